"""The graph walk: turning a graph of objects into a static GraphDef plus a flat state.

``flatten`` visits a graph depth first, in attribute order. Every ``Object`` and
``Variable`` gets an index the first time it is reached; reaching it again records a
reference to that index, which is how shared references and cycles survive a round trip.
Leaves (Variables and raw arrays) are collected in visiting order with their paths; the
rest (static attribute values, pytree structure, classes) goes into the GraphDef, a tree of
plain tuples with a cached hash, so equal structures compare and hash cheaply and jax.jit
can use it as a static argument.

``unflatten`` rebuilds the graph from a GraphDef and the leaves. Given ``existing`` (index
-> object) it updates those objects in place instead of creating new ones; transforms use
that to apply structural changes made inside a traced function to the caller's objects.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> from flaxen.nnx import graph
>>> shared = nnx.Param(jnp.zeros(2))
>>> gd, leaves, paths, refs = graph.flatten(nnx.Dict(a=shared, b=shared))
>>> paths, len(refs)
([('a',)], 2)
>>> d, _ = graph.unflatten(gd, leaves)
>>> d["a"] is d["b"]
True
"""

from __future__ import annotations

import types
from typing import Any

import jax

from flaxen.errors.nnx import MissingStateError
from flaxen.nnx.object import ARRAY_TYPES, Object
from flaxen.nnx.variables import Variable

__all__ = ["GraphDef", "flatten", "unflatten"]

_ARRAY = ("array",)
_NODES = (Variable, Object)
_SCALARS = frozenset({int, float, bool, str, complex, bytes, type(None)})
_SIMPLE = (int, float, bool, str, complex, bytes, type, types.FunctionType,
           types.BuiltinFunctionType, types.MethodType, types.ModuleType, type(Ellipsis))


class GraphDef:
  """The static structure of a graph: node types, attribute names, static values, sharing.

  Hashable and comparable by value (cheaply: the hash is computed once), and registered as
  a static pytree, so it can be passed to and returned from ``jax.jit``.
  """

  __slots__ = ("root", "leaf_paths", "num_refs", "_hash")

  def __init__(self, root: tuple, leaf_paths: tuple, num_refs: int):
    self.root = root
    self.leaf_paths = leaf_paths
    self.num_refs = num_refs
    self._hash = hash(root)

  def __hash__(self) -> int:
    return self._hash

  def __eq__(self, other: object) -> bool:
    return self is other or (isinstance(other, GraphDef) and self._hash == other._hash
                             and self.root == other.root)

  def __repr__(self) -> str:
    return f"GraphDef(leaves={len(self.leaf_paths)}, root={_tree_repr(self.root, 0)})"


jax.tree_util.register_static(GraphDef)


class _ById:
  """Wraps an unhashable static value so a GraphDef can hash it (by identity)."""

  __slots__ = ("value",)

  def __init__(self, value: Any):
    self.value = value

  def __hash__(self) -> int:
    return id(self.value)

  def __eq__(self, other: object) -> bool:
    return isinstance(other, _ById) and other.value is self.value


def _hashable(value: Any) -> Any:
  try:
    hash(value)
  except TypeError:
    return _ById(value)
  return value


def _unwrap(value: Any) -> Any:
  return value.value if isinstance(value, _ById) else value


def _static(value: Any) -> tuple:
  return ("static", _hashable(value))


def _key(entry: Any) -> Any:
  for attr in ("idx", "key", "name"):
    if hasattr(entry, attr):
      return getattr(entry, attr)
  return str(entry)


def flatten(root: Any) -> tuple[GraphDef, list, list[tuple], list]:
  """Walks a graph: ``(graphdef, leaves, leaf_paths, refs)``.

  ``leaves`` are the Variables (the objects themselves) and raw arrays in visiting order,
  ``refs`` every Object and Variable in index order.
  """
  index: dict[int, int] = {}
  refs: list = []
  leaves: list = []
  paths: list[tuple] = []

  def walk(value: Any, path: tuple) -> tuple:
    if type(value) in _SCALARS:
      return ("static", value)
    if isinstance(value, _NODES):
      i = index.get(id(value))
      if i is not None:
        return ("ref", i)
      i = index[id(value)] = len(refs)
      refs.append(value)
      if isinstance(value, Variable):
        leaves.append(value)
        paths.append(path)
        meta = tuple((k, _hashable(v)) for k, v in value._meta.items())
        return ("var", i, type(value), meta)
      return ("node", i, type(value),
              tuple((k, walk(v, path + (k,))) for k, v in value._graph_items()))
    if isinstance(value, ARRAY_TYPES):
      leaves.append(value)
      paths.append(path)
      return _ARRAY
    if value is None or isinstance(value, _SIMPLE):
      return _static(value)
    children, treedef = jax.tree_util.tree_flatten_with_path(value, is_leaf=lambda x: x
                                                             is not value)
    if treedef.num_nodes == 1:  # a leaf JAX knows nothing about: static
      return _static(value)
    return ("pytree", treedef,
            tuple(walk(c, path + (_key(p[0]),)) for p, c in children))

  root_def = walk(root, ())
  return GraphDef(root_def, tuple(paths), len(refs)), leaves, paths, refs


def unflatten(graphdef: GraphDef, leaves: list, existing: dict[int, Any] | None = None
              ) -> tuple[Any, list]:
  """Rebuilds a graph: ``(root, refs)``; leaves may be Variables, arrays or other values.

  Objects and Variables whose index is in ``existing`` are updated in place and reused.
  """
  refs: list = [None] * graphdef.num_refs
  leaf_iter = iter(leaves)
  existing = existing or {}

  def build(d: tuple) -> Any:
    kind = d[0]
    if kind == "static":
      return _unwrap(d[1])
    if kind == "array":
      leaf = next(leaf_iter)
      return leaf.raw_value if isinstance(leaf, Variable) else leaf
    if kind == "ref":
      return refs[d[1]]
    if kind == "var":
      _, i, cls, meta = d
      leaf = next(leaf_iter)
      if isinstance(leaf, Variable):
        value, meta = leaf._raw, leaf._meta
      else:
        value, meta = leaf, {k: _unwrap(v) for k, v in meta}
      var = existing.get(i)
      if var is None:
        var = cls._from_raw(value, dict(meta))
      else:
        var.__dict__["_raw"] = value
        if var._meta != meta:
          var.__dict__["_meta"] = dict(meta)
          var._bump()
      refs[i] = var
      return var
    if kind == "node":
      _, i, cls, attrs = d
      obj = existing.get(i)
      fresh = obj is None
      if fresh:
        obj = cls._graph_empty()
      refs[i] = obj
      obj._graph_set([(k, build(sub)) for k, sub in attrs], bump=not fresh)
      return obj
    _, treedef, children = d
    return treedef.unflatten([build(c) for c in children])

  root = build(graphdef.root)
  return root, refs


def leaves_by_path(graphdef: GraphDef, flat: dict) -> list:
  """The leaves a GraphDef needs, looked up by path in ``{path: leaf}``."""
  try:
    return [flat[p] for p in graphdef.leaf_paths]
  except KeyError as e:
    raise MissingStateError(e.args[0]) from None


def _tree_repr(d: tuple, depth: int) -> str:
  """An indented outline of a GraphDef tuple: nodes and Variables with their index."""
  kind = d[0]
  if kind == "static":
    text = repr(_unwrap(d[1]))
    return text if len(text) <= 60 else text[:57] + "..."
  if kind == "var":
    return f"{d[2].__name__}#{d[1]}"
  if kind == "ref":
    return f"ref#{d[1]}"
  if kind == "array":
    return "array"
  if kind == "node":
    head, items = f"{d[2].__name__}#{d[1]}", d[3]
  else:  # pytree
    head, items = "pytree", tuple(enumerate(d[2]))
  if not items:
    return head + "()"
  pad = "  " * (depth + 1)
  lines = [f"{pad}{k}={_tree_repr(v, depth + 1)}," for k, v in items]
  return head + "(\n" + "\n".join(lines) + "\n" + "  " * depth + ")"
