"""Graph utilities over the core walk: mapping, finding duplicates, setting metadata.

``recursive_map`` replaces nodes bottom up, ``map`` replaces Variable values, ``unpack``
splits into self-contained ``GraphState``s, ``find_duplicates`` lists shared nodes and
``set_metadata`` edits Variable metadata in place.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
>>> zeros = nnx.map(lambda path, x: jnp.zeros_like(x), model)
>>> float(zeros.kernel.value.sum()), zeros is model
(0.0, False)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import jax

from flaxen.nnx import filterlib
from flaxen.nnx.graph import GraphDef, cached_walk, leaves_by_path
from flaxen.nnx.graph import flatten as graph_flatten
from flaxen.nnx.graph import unflatten as graph_unflatten
from flaxen.nnx.graph_mode import set_graph_mode
from flaxen.nnx.graphlib import merge, split, variables
from flaxen.nnx.object import ARRAY_TYPES, Object
from flaxen.nnx.state import FlatState, State
from flaxen.nnx.tree_mode import check_tree
from flaxen.nnx.variables import Variable

__all__ = ["GraphState", "PureState", "unpack", "recursive_map", "map", "find_duplicates",
           "set_metadata", "flatten", "unflatten", "as_pure", "pure", "with_vars", "vars_as"]

A = TypeVar("A")
PureState = tuple[GraphDef[A], State]  # what ``split`` returns, for annotations


def _tree_mode(graph: bool | None) -> bool:
  return graph is False or (graph is None and not set_graph_mode.current_value())


class GraphState(State):
  """A State that carries its GraphDef: ``nnx.merge(graph_state, ...)`` needs nothing else.

  A pytree like State (the GraphDef is static).
  """

  @classmethod
  def _make(cls, graphdef: GraphDef, state: State) -> GraphState:
    out = cls._wrap(state._mapping)
    out.__dict__["_graphdef"] = graphdef
    return out

  @property
  def _state(self) -> State:
    return State._wrap(self._mapping)


def _gs_flatten_with_keys(gs: GraphState):
  keys = sorted(gs._mapping, key=lambda k: (type(k).__name__, k))
  return [(jax.tree_util.DictKey(k), gs._mapping[k]) for k in keys], (tuple(keys),
                                                                       gs._graphdef)


def _gs_unflatten(aux: tuple, children: Any) -> GraphState:
  keys, graphdef = aux
  out = GraphState._wrap(dict(zip(keys, children, strict=True)))
  out.__dict__["_graphdef"] = graphdef
  return out


jax.tree_util.register_pytree_with_keys(GraphState, _gs_flatten_with_keys, _gs_unflatten)


def unpack(node: Any, *filters: Any, graph: bool | None = None) -> Any:
  """Like ``split``, but each State carries the GraphDef: one ``GraphState`` per filter
  (a single one without filters). ``nnx.merge(*graph_states)`` rebuilds the graph.
  """
  graphdef, *states = split(node, *filters, graph=graph)
  out = [GraphState._make(graphdef, s) for s in states]
  return out[0] if len(out) == 1 else tuple(out)


def recursive_map(f: Callable[[tuple, Any], Any], node: Any, /, *,
                  graph: bool | None = None) -> Any:
  """Calls ``f(path, node)`` on every graph node (Objects and Variables), children before
  parents, and puts what it returns in the node's place (in its parent, in place; a root
  list, tuple or dict is rebuilt). A shared node is mapped once (graph mode).

  Raises:
    SharedReferenceError: tree mode found a shared node or a cycle.
  """
  if _tree_mode(graph):
    check_tree(cached_walk(node)[0])
  done: dict[int, Any] = {}

  def visit(value: Any, path: tuple) -> Any:
    if isinstance(value, Object | Variable):
      if id(value) in done:
        return done[id(value)]
      done[id(value)] = value  # a cycle back to it sees the node itself
      if isinstance(value, Object):
        for k, child in value._graph_items():
          new = visit(child, (*path, k))
          if new is not child:
            value._graph_put(k, new)
      out = done[id(value)] = f(path, value)
      return out
    if isinstance(value, list | tuple) and not isinstance(value, ARRAY_TYPES):
      items = [visit(v, (*path, i)) for i, v in enumerate(value)]
      if all(a is b for a, b in zip(items, value, strict=True)):
        return value
      return type(value)(items) if not hasattr(value, "_fields") else type(value)(*items)
    if isinstance(value, dict):
      items = {k: visit(v, (*path, k)) for k, v in value.items()}
      return value if all(items[k] is value[k] for k in value) else type(value)(items)
    return value

  return visit(node, ())


def map(f: Callable[[tuple, Any], Any], node: Any, /, *, graph: bool | None = None,  # noqa: A001
        recreate_variables: bool = True) -> Any:
  """A new graph like ``node`` whose state leaves are ``f(path, leaf)``: ``f`` gets each
  Variable and returns a Variable or a new value for it.

  Args:
    f: ``(path, variable) -> variable or value``.
    node: the graph.
    graph: graph mode or tree mode.
    recreate_variables: ``False`` puts what ``f`` returns in the new graph as it is (a
      plain value replaces the Variable).
  """
  if isinstance(node, Variable):  # a lone Variable is its own state, at the empty path
    new = f((), node)
    if isinstance(new, Variable) or not recreate_variables:
      return new
    return node.replace(new)
  graphdef, state = split(node, graph=graph)
  flat = [(p, f(p, v)) for p, v in state.flat_state()]
  out = merge(graphdef, State.from_flat_path(flat))
  if not recreate_variables:  # what f returned goes in as it is, plain values included
    for path, new in flat:
      if not isinstance(new, Variable):
        _put_at(out, path, new)
  return out


def _put_at(node: Any, path: tuple, value: Any) -> None:
  for k in path[:-1]:
    node = node._graph_get(k) if isinstance(node, Object) else node[k]
  if isinstance(node, Object):
    node._graph_put(path[-1], value)
  else:
    node[path[-1]] = value


def find_duplicates(node: Any, /, *, only: Any = None) -> list[list[tuple]]:
  """The paths of every graph node reached by more than one path: one list of paths per
  shared node (matching ``only`` if given), in walk order. The children of a shared node
  are reported only under its first path."""
  predicate = filterlib.to_predicate(... if only is None else only)
  paths: dict[int, list[tuple]] = {}

  def visit(value: Any, path: tuple) -> None:
    if isinstance(value, Object | Variable):
      if id(value) in paths:
        paths[id(value)].append(path)
        return
      paths[id(value)] = [path] if predicate(path, value) else []
      if isinstance(value, Object):
        for k, child in value._graph_items():
          visit(child, (*path, k))
    elif isinstance(value, list | tuple) and not isinstance(value, ARRAY_TYPES):
      for i, v in enumerate(value):
        visit(v, (*path, i))
    elif isinstance(value, dict):
      for k, v in value.items():
        visit(v, (*path, k))

  visit(node, ())
  return [p for p in paths.values() if len(p) > 1]


def set_metadata(node: Any, /, *, only: Any = ..., **metadata: Any) -> None:
  """Sets ``metadata`` on every Variable of ``node`` matching ``only``, in place."""
  predicate = filterlib.to_predicate(only)
  for path, var in variables(node).flat_state():
    if predicate(path, var):
      var.set_metadata(**metadata)


def flatten(node: Any, /, *, with_paths: bool = True, ref_index: Any = None,
            ref_outer_index: Any = None, graph: bool | None = None) -> tuple[GraphDef, Any]:
  """``(graphdef, flat_state)``: the graph's leaves (its Variables themselves, and raw
  arrays) with their paths, as a ``FlatState`` of ``(path, leaf)`` pairs (``with_paths=
  False``: a list of leaves). ``ref_index`` / ``ref_outer_index`` are accepted for Flax's
  signature; flaxen keeps no outside index tables.

  Raises:
    SharedReferenceError: tree mode found a shared node.
  """
  del ref_index, ref_outer_index
  graphdef, leaves, paths, _ = graph_flatten(node)
  if _tree_mode(graph):
    check_tree(graphdef)
  return graphdef, (FlatState(zip(paths, leaves, strict=True)) if with_paths else leaves)


def unflatten(graphdef: GraphDef, state: Any, /, *, index_ref: Any = None,
              outer_index_outer_ref: Any = None, copy_variables: bool = False,
              recreate_variables: bool = True) -> Any:
  """Rebuilds the graph from ``flatten``'s output: ``state`` is a FlatState (or list) of
  ``(path, leaf)`` pairs, a list of leaves in order, or a nested State."""
  del index_ref, outer_index_outer_ref, copy_variables, recreate_variables
  if isinstance(state, State):
    state = state.flat_state()
  items = list(state)
  if items and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], tuple)
                   for x in items):
    leaves = leaves_by_path(graphdef, dict(items))
  else:
    leaves = items
  return graph_unflatten(graphdef, leaves)[0]


def as_pure(tree: Any) -> Any:
  """``tree`` with every Variable replaced by its value (a plain pytree of arrays)."""
  return jax.tree.map(lambda x: x.get_value() if isinstance(x, Variable) else x, tree,
                      is_leaf=lambda x: isinstance(x, Variable))


def pure(tree: Any) -> Any:
  """Deprecated name of :func:`as_pure`."""
  return as_pure(tree)


def with_vars(node: Any, /, *, hijax: bool | None = None, ref: bool | None = None,
              mutable: bool | None = None, only: Any = ..., allow_duplicates: bool = False
              ) -> Any:
  """Flax converts Variables between its kinds (hijax, array refs) here. flaxen has a
  single kind of Variable, so ``node`` is returned as it is."""
  del hijax, ref, mutable, only, allow_duplicates
  return node


def vars_as(node: Any, /, *, hijax: bool | None = None, ref: bool | None = None,
            mutable: bool | None = None, only: Any = ..., allow_duplicates: bool = False
            ) -> Any:
  """Deprecated name of :func:`with_vars`."""
  return with_vars(node, hijax=hijax, ref=ref, mutable=mutable, only=only,
                   allow_duplicates=allow_duplicates)
