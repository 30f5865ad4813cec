"""``nnx.prefix``: per-Variable transform prefixes (axes, specs) computed from a graph.

``nnx.prefix(model, {nnx.Param: 0, ...: None})`` gives, for each Variable of ``model``, the
value of the first filter that matches it. The result stands for ``model`` in a
transform's ``in_axes`` / ``out_axes`` / ``in_specs``: the transform looks each Variable
up by its path. This is how prefixes are chosen per Variable without graph updates, where
``StateAxes`` / ``StateSharding`` are not available. Given a pytree of graph objects, it
returns the same pytree with one prefix per object.

In tree mode (``graph=False``) the prefix of a graph object is a copy of it whose Variables
hold their prefixes (a pytree shaped like the object, so plain ``jax.vmap`` takes it as an
``in_axes`` prefix too); in graph mode it is a ``Prefix`` (shared Variables are not a tree).

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
>>> axes = nnx.prefix(model, {nnx.PathContains("kernel"): 0, ...: None}, graph=False)
>>> axes.kernel.value, axes.bias.value
(0, None)
>>> axes = nnx.prefix(model, {nnx.PathContains("kernel"): 0, ...: None}, graph=True)
>>> axes.prefix_of(("kernel",), model.kernel), axes.prefix_of(("bias",), model.bias)
(0, None)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax

from flaxen.errors.nnx import UnmatchedFilterError
from flaxen.nnx import filterlib
from flaxen.nnx.graph import flatten
from flaxen.nnx.graph_mode import resolve_graph
from flaxen.nnx.graph_utils import map as graph_map
from flaxen.nnx.object import is_graph_node

__all__ = ["prefix", "Prefix"]


class Prefix:
  """The prefixes of one graph object's Variables, by path within the object (what
  ``nnx.prefix`` returns for each graph object)."""

  __slots__ = ("_fn", "_by_path")

  def __init__(self, fn: Callable[[tuple, Any], Any], by_path: dict[tuple, Any]):
    self._fn = fn
    self._by_path = by_path

  def prefix_of(self, path: tuple, variable: Any) -> Any:
    """The prefix of the Variable at ``path`` (asked of the filters if the object did not
    have that path when the prefix was made)."""
    path = tuple(path)
    return self._by_path[path] if path in self._by_path else self._fn(path, variable)

  def values(self) -> list:
    """The distinct prefixes, in the order of the object's Variables."""
    out: list = []
    for v in self._by_path.values():
      if v not in out:
        out.append(v)
    return out

  def __repr__(self) -> str:
    return f"Prefix({self._by_path!r})"


def _paths(node: Any) -> list[tuple[tuple, Any]]:
  _, leaves, paths, _ = flatten(node)
  return list(zip(paths, leaves, strict=True))


def prefix(node: Any, filter_map: Mapping[Any, Any] | Callable[[tuple, Any], Any], /, *,
           graph: bool | None = None) -> Any:
  """Per-Variable prefixes for a transform, chosen by filters.

  Args:
    node: a graph object, or a pytree of them (and of arrays).
    filter_map: a mapping from filters to prefixes (the first filter that matches a
      Variable gives its prefix), or a function ``(path, variable) -> prefix``.
    graph: walk ``node`` as a graph (shared Variables once, at their first path) or, if
      False, as a pytree. ``None``: ``nnx.set_graph_mode``'s value.

  Returns:
    ``node``'s pytree with, in place of each graph object, a copy of it whose Variables
    hold their prefixes (tree mode) or a ``Prefix`` (graph mode), and the prefix of each
    array leaf in place of the array, to pass as ``in_axes`` / ``out_axes`` /
    ``in_specs``.

  Raises:
    UnmatchedFilterError: a Variable that no filter matches.
  """
  graph = resolve_graph(graph)
  if callable(filter_map) and not isinstance(filter_map, Mapping):
    fn = filter_map
  else:
    filters = tuple(filter_map)
    pairs = tuple((filterlib.to_predicate(f), v) for f, v in filter_map.items())

    def fn(path: tuple, leaf: Any) -> Any:
      for predicate, value in pairs:
        if predicate(path, leaf):
          return value
      raise UnmatchedFilterError(path, leaf, filters)

  def one(x: Any) -> Any:
    if not is_graph_node(x):
      return fn((), x)
    if not graph:  # a copy shaped like x: the Variables' types and metadata stay
      return graph_map(fn, x, graph=False)
    return Prefix(fn, {path: fn(path, leaf) for path, leaf in _paths(x)})

  return jax.tree_util.tree_map(one, node, is_leaf=is_graph_node)
