"""The functional API over graphs: split, merge, state, update, graphdef, clone, pop.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
>>> graphdef, params = nnx.split(model, nnx.Param)
>>> params.kernel.value.shape
(2, 3)
>>> copy = nnx.merge(graphdef, params)
>>> copy is model, bool((copy.kernel.value == model.kernel.value).all())
(False, True)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from flaxen.errors.nnx import StatePathError, UnmatchedFilterError
from flaxen.nnx import filterlib
from flaxen.nnx.graph import GraphDef, flatten, leaves_by_path, unflatten
from flaxen.nnx.object import ARRAY_TYPES, Object
from flaxen.nnx.state import State
from flaxen.nnx.variables import Variable

__all__ = ["split", "merge", "state", "update", "graphdef", "clone", "pop", "iter_graph",
           "variables", "call"]

N = TypeVar("N")


def _copy(leaf: Any) -> Any:
  return leaf.copy() if isinstance(leaf, Variable) else leaf


def _group(leaves: list, paths: list, filters: tuple, exhaustive: bool) -> list[State]:
  predicates = [filterlib.to_predicate(f) for f in filters]
  groups: list[list] = [[] for _ in predicates]
  for path, leaf in zip(paths, leaves, strict=True):
    for group, pred in zip(groups, predicates, strict=True):
      if pred(path, leaf):
        group.append((path, _copy(leaf)))
        break
    else:
      if exhaustive:
        raise UnmatchedFilterError(path, leaf, filters)
  return [State.from_flat_path(g) for g in groups]


def split(node: Any, *filters: Any) -> tuple[Any, ...]:
  """Splits a graph into its GraphDef and one State per filter.

  Args:
    node: a graph node (Module, Rngs, Optimizer...) or a pytree of them.
    *filters: each Variable goes to the first filter it matches; with no filters, one State
      holds everything.

  Returns:
    ``(graphdef, state, ...)``: one State per filter.

  Raises:
    UnmatchedFilterError: a Variable matches none of the filters.

  >>> from flaxen import nnx
  >>> graphdef, params, rest = nnx.split(nnx.Rngs(0), nnx.RngKey, ...)
  >>> list(params.default), list(rest.default)
  (['key'], ['count'])
  """
  gd, leaves, paths, _ = flatten(node)
  states = _group(leaves, paths, filters or (..., ), exhaustive=True)
  return (gd, *states)


def _flat(states: tuple) -> dict:
  """``{path: leaf}`` of several States (plain nested dicts accepted), later ones winning."""
  flat: dict = {}
  for s in states:
    flat.update((s if isinstance(s, State) else State(s)).flat_state())
  return flat


def merge(graphdef: GraphDef, state: Any, /, *states: Any) -> Any:
  """Builds a new graph from a GraphDef and the States that ``split`` returned.

  Raises:
    MissingStateError: the States lack a value the GraphDef needs.

  >>> from flaxen import nnx
  >>> rngs = nnx.merge(*nnx.split(nnx.Rngs(0)))
  >>> int(rngs.default.count.value)
  0
  """
  node, _ = unflatten(graphdef, leaves_by_path(graphdef, _flat((state, *states))))
  return node


def state(node: Any, *filters: Any) -> Any:
  """The graph's state (copies of its Variables): a State, or a tuple for several filters.

  Unlike ``split``, Variables matching no filter are left out.

  >>> from flaxen import nnx
  >>> [p for p, _ in nnx.state(nnx.Rngs(a=0, b=1), nnx.RngCount).flat_state()]
  [('a', 'count'), ('b', 'count')]
  """
  _, leaves, paths, _ = flatten(node)
  states = _group(leaves, paths, filters or (..., ), exhaustive=False)
  return states[0] if len(states) == 1 else tuple(states)


def graphdef(node: Any) -> GraphDef:
  """The GraphDef of a graph.

  >>> from flaxen import nnx
  >>> nnx.graphdef(nnx.Rngs(0)) == nnx.graphdef(nnx.Rngs(1))
  True
  """
  return flatten(node)[0]


def variables(node: Any, *filters: Any) -> Any:
  """Like ``state`` but the State holds the graph's own Variables, not copies."""
  _, leaves, paths, _ = flatten(node)
  predicates = [filterlib.to_predicate(f) for f in (filters or (...,))]
  out = [State.from_flat_path([(p, v) for p, v in zip(paths, leaves, strict=True)
                               if pred(p, v)]) for pred in predicates]
  return out[0] if len(out) == 1 else tuple(out)


def update(node: Any, state: Any, /, *states: Any) -> None:
  """Writes the values (and metadata) of States into the graph's Variables, in place.

  Paths that do not exist in the graph are added as new attributes.

  Raises:
    StatePathError: a path leads through something that is not a graph node.

  >>> from flaxen import nnx
  >>> rngs = nnx.Rngs(0)
  >>> nnx.update(rngs, {"default": {"count": nnx.RngCount(5)}})
  >>> int(rngs.default.count.value)
  5
  """
  flat = _flat((state, *states))
  gd, leaves, paths, refs = flatten(node)
  raw_changed = False
  new_leaves = []
  for path, leaf in zip(paths, leaves, strict=True):
    new = flat.pop(path, leaf)
    if isinstance(leaf, Variable):
      if new is not leaf:
        value = new._raw if isinstance(new, Variable) else new
        leaf.__dict__["_raw"] = value
        if isinstance(new, Variable) and new._meta != leaf._meta:
          leaf.set_metadata(new._meta)
      new_leaves.append(leaf)
    else:
      raw_changed = raw_changed or new is not leaf
      new_leaves.append(new.raw_value if isinstance(new, Variable) else new)
  if raw_changed:
    unflatten(gd, new_leaves, existing=dict(enumerate(refs)))
  for path, leaf in flat.items():
    parent = _at(node, path[:-1], path)
    parent._graph_put(path[-1], _copy(leaf))


def _at(node: Any, keys: tuple, full_path: tuple) -> Any:
  for k in keys:
    if not isinstance(node, Object):
      raise StatePathError(full_path, k, node)
    try:
      node = node._graph_get(k)
    except (AttributeError, KeyError, IndexError):
      raise StatePathError(full_path, k, node) from None
  if not isinstance(node, Object):
    raise StatePathError(full_path, full_path[-1] if full_path else None, node)
  return node


def clone(node: N) -> N:
  """A deep copy of the graph (new objects, same structure and values, sharing kept)."""
  gd, leaves, _, _ = flatten(node)
  return unflatten(gd, leaves)[0]


def pop(node: Any, *filters: Any) -> Any:
  """Removes the Variables matching ``filters`` from the graph and returns them as State(s)."""
  _, leaves, paths, _ = flatten(node)
  states = _group(leaves, paths, filters, exhaustive=False)
  for s in states:
    for path, _leaf in s.flat_state():
      _at(node, path[:-1], path)._graph_del(path[-1])
  return states[0] if len(states) == 1 else tuple(states)


def iter_graph(node: Any) -> Iterator[tuple[tuple, Any]]:
  """Yields ``(path, value)`` for every node and leaf of a graph, children before parents.

  Each Object and Variable is visited once, at its first path.
  """
  seen: set[int] = set()

  def walk(value: Any, path: tuple) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, Variable | Object):
      if id(value) in seen:
        return
      seen.add(id(value))
      if isinstance(value, Object):
        for k, v in value._graph_items():
          yield from walk(v, path + (k,))
    elif isinstance(value, list | tuple) and not isinstance(value, ARRAY_TYPES):
      for i, v in enumerate(value):
        yield from walk(v, path + (i,))
    elif isinstance(value, dict):
      for k, v in value.items():
        yield from walk(v, path + (k,))
    yield path, value

  yield from walk(node, ())


class _CallProxy:
  """Attribute access builds a method path; calling it runs the method on a merged copy."""

  def __init__(self, graphdef_state: tuple, path: tuple[str, ...]):
    self._graphdef_state = graphdef_state
    self._path = path

  def __getattr__(self, name: str) -> _CallProxy:
    return _CallProxy(self._graphdef_state, (*self._path, name))

  def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, tuple]:
    node = merge(*self._graphdef_state)
    method = node
    for name in self._path:
      method = getattr(method, name)
    out = method(*args, **kwargs)
    return out, split(node)


def call(graphdef_state: tuple, /) -> Any:
  """Calls a method of the graph described by ``(graphdef, state)``, functionally.

  ``nnx.call((graphdef, state)).method(*args)`` (or ``nnx.call(...)(*args)`` for
  ``__call__``) returns ``(output, (graphdef, new_state))`` and leaves the inputs unchanged.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> graphdef, state = nnx.split(nnx.Linear(2, 1, rngs=nnx.Rngs(0)))
  >>> y, (graphdef, state) = nnx.call((graphdef, state))(jnp.ones((1, 2)))
  >>> y.shape
  (1, 1)
  """
  return _CallProxy(graphdef_state, ())
