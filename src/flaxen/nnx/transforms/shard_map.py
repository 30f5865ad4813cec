"""``nnx.shard_map``: ``jax.shard_map`` for functions that take, mutate and return graph
objects.

It is ``nnx.vmap``'s argument handling with partition specs in place of axes: ``in_specs``
is a prefix of the arguments whose leaves are ``PartitionSpec``s, given per graph argument
(all its Variables), per Variable (``nnx.StateSharding`` in graph mode with graph updates,
a State of specs, or a prefix shaped like the argument from ``nnx.prefix``). Inside ``f``
each Variable holds its shard; the state it writes comes back with its input spec, and
graph objects made inside ``f`` come out along ``out_specs``.

>>> import jax, jax.numpy as jnp
>>> from flaxen import nnx
>>> mesh = jax.sharding.Mesh(jax.devices()[:1], ("d",))
>>> P = jax.sharding.PartitionSpec
>>> count = nnx.BatchStat(jnp.array(0))
>>> @nnx.shard_map(mesh=mesh, in_specs=(P(), P("d")), out_specs=P("d"))
... def f(count, x):
...   count.value += 1
...   return x * 2
>>> f(count, jnp.arange(4.0)), int(count.value)
(Array([0., 2., 4., 6.], dtype=float32), 1)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Set
from typing import Any

import jax

from flaxen.nnx.transforms.axes import is_prefix_leaf
from flaxen.nnx.transforms.vmap import _Vmapped

P = jax.sharding.PartitionSpec

__all__ = ["shard_map"]


def _jax_shard_map(f: Callable, in_axes: Any, out_axes: Any, **options: Any) -> Callable:
  return jax.shard_map(f, in_specs=in_axes, out_specs=out_axes, **options)


class _ShardMapped(_Vmapped):
  name = "shard_map"
  jax_transform = staticmethod(_jax_shard_map)
  kwargs_axis = P()  # replicated, as jax.shard_map has no kwargs
  static_axis = P()


def shard_map(f: Callable | None = None, *, mesh: Any, in_specs: Any, out_specs: Any,
              axis_names: Set[Any] = frozenset(), check_vma: bool = True,
              graph: bool | None = None, graph_updates: bool | None = None) -> Any:
  """Maps ``f`` over shards of its arguments like ``jax.shard_map``; graph objects among
  its arguments are updated.

  Args:
    f: the function; omitted, ``shard_map`` returns a decorator.
    mesh, axis_names, check_vma: as in ``jax.shard_map``.
    in_specs: a prefix of the arguments with ``PartitionSpec`` leaves; for a graph
      argument, one spec for all its Variables, or one per Variable (``nnx.StateSharding``
      with graph updates; a State of specs or an ``nnx.prefix`` result without).
    out_specs: a prefix of the output with ``PartitionSpec`` leaves.
    graph, graph_updates: as in ``nnx.vmap`` (tree mode: a Variable may appear once among
      the arguments; ``StateSharding`` needs graph mode with graph updates).

  Returns:
    The function over global arrays. State written inside comes back with its input spec.
  """
  if f is None:
    return functools.partial(shard_map, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                             axis_names=axis_names, check_vma=check_vma, graph=graph,
                             graph_updates=graph_updates)
  options = dict(mesh=mesh, axis_names=axis_names, check_vma=check_vma)
  return _ShardMapped(f, _replicated(in_specs), _replicated(out_specs), {}, options, graph,
                      graph_updates)


def _replicated(specs: Any) -> Any:
  """``None`` specs as ``P()`` (replicated): jax.shard_map reads ``None`` as an empty
  subtree, while outputs and state grouped under it hold values."""
  return jax.tree_util.tree_map(lambda s: P() if s is None else s, specs,
                                is_leaf=lambda s: s is None or is_prefix_leaf(s))
