"""``nnx.StateSharding``: shardings for a graph argument's state, chosen per Variable by
filters (graph mode with graph updates; a prefix filter, so tree mode rejects it).

>>> import jax
>>> from flaxen import nnx
>>> cpu = jax.sharding.SingleDeviceSharding(jax.devices()[0])
>>> m = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
>>> nnx.jit(lambda m: None, in_shardings=(nnx.StateSharding({...: cpu}),))(m)
>>> m.kernel[...].sharding == cpu
True
"""

from __future__ import annotations

from typing import Any

import jax

from flaxen import errors
from flaxen.nnx import filterlib
from flaxen.nnx.graph import flatten
from flaxen.nnx.object import is_graph_node
from flaxen.nnx.state import State
from flaxen.nnx.transforms.axes import PathIs, resolve
from flaxen.nnx.transforms.prefix import Prefix
from flaxen.nnx.variables import Variable

__all__ = ["StateSharding", "state_shardings", "constrain"]


class StateSharding:
  """Shardings for a graph argument's state, chosen per Variable by filters (graph mode
  with graph updates): ``nnx.StateSharding({nnx.PathContains('kernel'): s1, ...: s2})``.
  """

  def __init__(self, filter_sharding: Any, /):
    if isinstance(filter_sharding, State):  # a State of shardings: one filter per path
      filter_sharding = [(PathIs(p), s) for p, s in filter_sharding.flat_state()]
    items = tuple(filter_sharding.items() if hasattr(filter_sharding, "items")
                  else filter_sharding)
    self._filters = tuple(f for f, _ in items)
    self._shardings = tuple(s for _, s in items)

  @property
  def filters(self) -> tuple:
    """The filters, in order of precedence."""
    return self._filters

  @property
  def shardings(self) -> tuple:
    """The sharding of each filter."""
    return self._shardings

  def map_prefix(self, path: tuple, variable: Any) -> Any:
    """The sharding of the Variable at ``path``: the first filter's that matches."""
    for filt, sharding in zip(self.filters, self.shardings, strict=True):
      if filterlib.to_predicate(filt)(path, variable):
        return sharding
    raise errors.UnmatchedFilterError(path, variable, self.filters)

  def __repr__(self) -> str:
    return f"StateSharding({dict(zip(self.filters, self.shardings, strict=True))})"

  def __eq__(self, other: object) -> bool:
    return (isinstance(other, StateSharding) and self.filters == other.filters
            and self.shardings == other.shardings)

  def __hash__(self) -> int:
    return hash((self.filters, self.shardings))


def state_shardings(in_shardings: Any, treedef: Any, positions: tuple, leaves: list,
                     paths: list) -> Any:
  """``in_shardings`` with each ``StateSharding`` (given for a positional argument that is
  a graph object) replaced by the list of its Variables' shardings, chosen by filter."""
  arg_defs = treedef.children()[0].children()
  specs = list(in_shardings) if isinstance(in_shardings, tuple | list) else (
    [in_shardings] * len(arg_defs))
  offsets, start = [], 0
  for d in arg_defs:
    offsets.append(start)
    start += d.num_leaves
  per_node: dict[int, Any] = {}
  for i, spec in enumerate(specs):
    k = positions.index(offsets[i]) if offsets[i] in positions else -1
    if not isinstance(spec, StateSharding):
      if k >= 0:
        per_node[k] = spec
      continue
    if k < 0 or arg_defs[i].num_leaves != 1:
      raise errors.GraphNodePrefixError("nnx.jit", f"in_shardings[{i}]", spec)
    specs[i] = [spec.map_prefix(path[1:], leaf)
                for path, leaf in zip(paths, leaves, strict=True) if path[0] == k]
    per_node[k] = iter(specs[i])
  state = []
  for path in paths:
    spec = per_node.get(path[0])
    state.append(next(spec) if hasattr(spec, "__next__") else spec)
  return tuple(specs), state


def _is_prefix(x: Any) -> bool:
  return isinstance(x, Prefix) or is_graph_node(x)  # graph / tree mode nnx.prefix results


def _is_spec_leaf(x: Any) -> bool:
  return x is None or _is_prefix(x)


def constrain(out: Any, specs: Any) -> Any:
  """``jax.lax.with_sharding_constraint(out, specs)``, where an ``nnx.prefix`` result in
  ``specs`` stands for the graph object at its place in ``out``: each of that object's
  Variables is constrained to the sharding its path selects."""
  if not any(_is_prefix(x) for x in jax.tree.leaves(specs, is_leaf=_is_spec_leaf)):
    return jax.lax.with_sharding_constraint(out, specs)

  def one(spec: Any, x: Any) -> Any:
    if _is_prefix(spec) and is_graph_node(x):
      _, leaves, paths, _ = flatten(x)
      for path, leaf in zip(paths, leaves, strict=True):
        sharding = resolve(spec, path, leaf) if isinstance(leaf, Variable) else None
        if sharding is not None:
          leaf.__dict__["_raw"] = jax.lax.with_sharding_constraint(leaf._raw, sharding)
      return x
    return x if spec is None else jax.lax.with_sharding_constraint(x, spec)

  return jax.tree.map(one, specs, out, is_leaf=_is_spec_leaf)
