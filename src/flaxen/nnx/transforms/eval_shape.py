"""``nnx.eval_shape``: run a function abstractly, graph objects in and out.

>>> from flaxen import nnx
>>> abstract = nnx.eval_shape(lambda: nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
>>> abstract.kernel.value
ShapeDtypeStruct(shape=(2, 3), dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from flaxen.nnx.graph import flatten, unflatten
from flaxen.nnx.transforms import lift

__all__ = ["eval_shape"]


def eval_shape(f: Callable, *args: Any, **kwargs: Any) -> Any:
  """The output of ``f(*args, **kwargs)`` with ``jax.ShapeDtypeStruct`` for every array.

  Graph objects in the output are new objects whose Variables hold ShapeDtypeStructs; the
  arguments are not modified.
  """
  leaves, treedef, positions = lift.find_nodes((args, kwargs))
  graphdef, state_leaves, _, _ = flatten(tuple(leaves[p] for p in positions))

  captured = {}  # static facts of the output, recorded during the single trace

  def pure(values: list) -> tuple:
    (call_args, call_kwargs), _, _ = lift.rebuild(graphdef, values, leaves, treedef, positions)
    out_leaves, out_treedef, out_positions, out_nodes = lift.take_nodes(
      f(*call_args, **call_kwargs))
    out_graphdef, out_values, _, _ = flatten(tuple(out_nodes))
    captured.update(graphdef=out_graphdef, treedef=out_treedef, positions=out_positions)
    return out_leaves, [lift.raw(x) for x in out_values]

  out_leaves, out_values = jax.eval_shape(pure, [lift.raw(x) for x in state_leaves])
  nodes, _ = unflatten(captured["graphdef"], out_values)
  for i, node in zip(captured["positions"], nodes, strict=True):
    out_leaves[i] = node
  return captured["treedef"].unflatten(out_leaves)
