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

import functools
import gc
import types
import weakref
from typing import Any

import jax

from flaxen.errors.nnx import MissingStateError
from flaxen.nnx import epoch
from flaxen.nnx.object import ARRAY_TYPES, Object, StaticDict, StaticList, _own
from flaxen.nnx.state import State
from flaxen.nnx.variables import Variable, current_trace

__all__ = ["GraphDef", "flatten", "unflatten"]

_ARRAY = ("array",)
_SCALARS = frozenset({int, float, bool, str, complex, bytes, type(None)})
_SIMPLE = (int, float, bool, str, complex, bytes, type, types.FunctionType,
           types.BuiltinFunctionType, types.MethodType, types.ModuleType, type(Ellipsis))
_SKIP = ("_nnx_version", "_nnx_tracked", "_nnx_layout")  # bookkeeping, not graph data

# What the walk does with a value, decided once per class (``_kind``): a dict lookup per
# value instead of a chain of isinstance checks.
_STATIC, _HASHED, _VAR, _NODE, _CUSTOM, _ARRAY_LEAF, _DICT, _LIST, _TUPLE, _OTHER = range(1, 11)
_TRACER = jax.core.Tracer
_CONTAINERS = {dict: _DICT, list: _LIST, tuple: _TUPLE, StaticDict: _DICT, StaticList: _LIST}
_KINDS: dict[type, int] = {}


def gc_paused(fn: Any) -> Any:
  """Runs ``fn`` with the cyclic garbage collector off. A walk or rebuild allocates a few
  objects per Variable, none of them garbage; with the collector on, those allocations set
  off collections that cost more than the walk itself (3-4x on a 1,400-Variable model)."""

  @functools.wraps(fn)
  def paused(*args: Any, **kwargs: Any) -> Any:
    if not gc.isenabled():
      return fn(*args, **kwargs)
    gc.disable()
    try:
      return fn(*args, **kwargs)
    finally:
      gc.enable()

  return paused


def _classify(value: Any) -> int:
  t = type(value)
  if t in _SCALARS:
    return _STATIC
  if issubclass(t, Variable):
    return _VAR
  if issubclass(t, Object):
    plain = (t._graph_items is Object._graph_items and t._graph_set is Object._graph_set
             and t._graph_empty.__func__ is Object._graph_empty.__func__
             and t.__new__ is Object.__new__ and _plain_new(t))
    return _NODE if plain else _CUSTOM
  if issubclass(t, ARRAY_TYPES):
    return _ARRAY_LEAF
  if issubclass(t, _SIMPLE):
    return _HASHED
  if t in _CONTAINERS:
    return _CONTAINERS[t]
  if issubclass(t, _TRACER):  # an array or not, per instance
    return _OTHER
  # Pytree or leaf is a property of the class (JAX's registry is keyed by class).
  nodes = jax.tree_util.tree_structure(value, is_leaf=lambda x: x is not value).num_nodes
  return _HASHED if nodes == 1 and not isinstance(value, ARRAY_TYPES) else _OTHER


def _plain_new(t: type) -> bool:
  """Whether ``object.__new__(t)`` works (not for subclasses of builtins like ``list``)."""
  try:
    object.__new__(t)
  except TypeError:
    return False
  return True


def _kind(value: Any) -> int:
  """The kind of ``value``'s class, classified on first sight."""
  kind = _KINDS.get(type(value))
  if kind is None:
    if len(_KINDS) > 4096:  # classes made on the fly must not pile up
      _KINDS.clear()
    kind = _KINDS[type(value)] = _classify(value)
  return kind


def _layout(d: dict) -> tuple:
  """``(version, static_defs, dynamic_keys)`` of a plain Object's ``__dict__``, sorted by
  name. Static values change only through ``__setattr__``, which bumps the version, so the
  walk keeps this in the object and reuses it while the version is the same."""
  statics, dynamic = [], []
  marked = d.get("_nnx_kinds") or {}  # nnx.data: dynamic, whatever the value
  for k in sorted(k for k in d if k not in _SKIP):
    v = d[k]
    kind = _KINDS.get(type(v)) or _kind(v)
    if marked.get(k) and v is not None:
      dynamic.append(k)
    elif kind == _STATIC:
      statics.append((k, ("static", v)))
    elif kind == _HASHED:
      statics.append((k, ("static", _hashable(v))))
    else:
      dynamic.append(k)
  return d.get("_nnx_version"), tuple(statics), tuple(dynamic)


class GraphDef:
  """The static structure of a graph: node types, attribute names, static values, sharing.

  Hashable and comparable by value (cheaply: the hash is computed once, when first asked
  for), and registered as a static pytree, so it can be passed to and returned from
  ``jax.jit``. ``nnx.split`` / ``nnx.graphdef`` make them; the constructor takes Flax's
  parameter names over flaxen's representation (Flax keeps a flat list of node records,
  flaxen one nested entry):

  Args:
    nodes: the root entry: nested tuples ``("node", index, cls, n_static, items)``,
      ``("var", index, cls, metadata)``, ``("ref", index)``, ... (see the nnx README).
    attributes: the attribute path of each leaf, in leaf order.
    num_leaves: the number of leaves (``len(attributes)``).
    outer_index: for an update context, the outer node index of each node (or ``None``).
    num_refs: the number of indexed nodes; counted from ``nodes`` when not given.
  """

  __slots__ = ("root", "leaf_paths", "num_refs", "outer_index", "_hash", "_plan", "_tree")

  def __init__(self, nodes: tuple, attributes: tuple, num_leaves: int,
               outer_index: tuple | None = None, num_refs: int | None = None):
    if num_leaves != len(attributes):
      raise ValueError(f"GraphDef: num_leaves={num_leaves} but {len(attributes)} leaf paths "
                       "were given; pass num_leaves=len(attributes).")
    self.root = nodes
    self.leaf_paths = tuple(attributes)
    self.num_refs = _count_refs(nodes) if num_refs is None else num_refs
    # With an update context (nnx.update_context): for each node index, the index of the
    # outer object it stands for (-1: a new node), so the outer merge updates them.
    self.outer_index = outer_index
    self._hash = None
    self._plan = None  # graph_builder's: None (never merged), 0 (merged once), or the plan
    self._tree = False  # tree_mode's: True once the graph is known to be a valid pytree

  def __hash__(self) -> int:
    if self._hash is None:
      self._hash = hash(self.root)
    return self._hash

  def __eq__(self, other: object) -> bool:
    return self is other or (isinstance(other, GraphDef) and hash(self) == hash(other)
                             and self.root == other.root
                             and self.outer_index == other.outer_index)

  def __repr__(self) -> str:
    return f"GraphDef(leaves={len(self.leaf_paths)}, root={_tree_repr(self.root, 0)})"

  @property
  def nodes(self) -> tuple:
    """The root entry (Flax's name: its node records)."""
    return self.root

  @property
  def attributes(self) -> tuple:
    """The attribute path of each leaf, in leaf order."""
    return self.leaf_paths

  @property
  def num_leaves(self) -> int:
    """How many leaves (Variables and arrays) a State for this GraphDef holds."""
    return len(self.leaf_paths)

  def __reduce__(self) -> tuple:
    # Copies and pickles leave the merge plan behind: it refers to this root's entries
    # by id, and its compiled builders cannot be pickled.
    return GraphDef, (self.root, self.leaf_paths, len(self.leaf_paths), self.outer_index,
                      self.num_refs)

  def _with_outer(self, outer_index: tuple | None) -> GraphDef:
    return GraphDef(self.root, self.leaf_paths, len(self.leaf_paths), outer_index,
                    self.num_refs)

  def with_no_outer_index(self) -> GraphDef:
    """This GraphDef without an outer index."""
    return self._with_outer(None)

  def with_same_outer_index(self) -> GraphDef:
    """This GraphDef with each node standing for the outer node of the same index."""
    return self._with_outer(tuple(range(self.num_refs)))

  def with_matching_outer_index(self, other: GraphDef) -> GraphDef:
    """This GraphDef with ``other``'s outer index."""
    return self._with_outer(other.outer_index)

  __class_getitem__ = classmethod(types.GenericAlias)  # ``GraphDef[Model]`` in annotations

  def apply(self, state: Any, *states: Any, graph: bool | None = None) -> Any:
    """``nnx.call((self, state))``: ``graphdef.apply(state).method(*args)`` returns
    ``(output, (graphdef, new_state))``."""
    from flaxen.nnx.graphlib import call, merge_states_for_call
    return call((self, merge_states_for_call(state, states)))


jax.tree_util.register_static(GraphDef)


def _count_refs(entry: tuple) -> int:
  """One more than the largest node index in a GraphDef entry (0 without any)."""
  tag = entry[0]
  if tag in ("node", "var", "ref"):
    n = entry[1] + 1
  else:
    n = 0
  if tag == "node":
    items = entry[4]
  elif tag in ("dict", "list", "tuple"):
    items = entry[1]
  elif tag == "pytree":
    items = entry[2]
  else:
    items = ()
  for _, sub in items:
    n = max(n, _count_refs(sub))
  return n


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


def _meta_items(meta: dict) -> tuple:
  return tuple([(k, _hashable(v)) for k, v in meta.items()])


def _static(value: Any) -> tuple:
  return ("static", _hashable(value))


def _key(entry: Any) -> Any:
  for attr in ("idx", "key", "name"):
    if hasattr(entry, attr):
      return getattr(entry, attr)
  return str(entry)


def flatten(root: Any, seed: tuple | None = None) -> tuple[GraphDef, list, list[tuple], list]:
  """Walks a graph: ``(graphdef, leaves, leaf_paths, refs)``.

  ``leaves`` are the Variables (the objects themselves) and raw arrays in visiting order,
  ``refs`` every Object and Variable in index order. ``seed``: ``(index, refs)`` of earlier
  walks (``{id(node): index}`` and the nodes), extended in place, so a node they reached
  becomes a ``("ref", i)`` entry and new nodes are numbered after theirs (a split context).
  """
  return _walk(root, seed)[0][:4]


def walk(root: Any) -> tuple[GraphDef, list, list[tuple], list, list]:
  """``flatten`` plus ``parents``: the path of each leaf's container, one tuple object
  shared by siblings (``None`` for a root leaf), so States can be nested without
  re-splitting paths."""
  return _walk(root)[0]


@gc_paused
def _walk(root: Any, seed: tuple | None = None) -> tuple[tuple, bool]:
  """``(walk's result, whether a cached copy can be validated by versions alone)``: not
  when a leaf is a raw array (replacing one bumps no version). As for ``nnx.jit``'s cache,
  in-place changes to plain containers nested in a tuple or another pytree (an optax
  state) are not seen: those are replaced, not mutated."""
  loose = []
  index: dict[int, int]
  index, refs = ({}, []) if seed is None else seed
  leaves: list = []
  paths: list[tuple] = []
  parents: list = []
  kinds = _KINDS
  add_ref, add_leaf, add_path, add_parent = refs.append, leaves.append, paths.append, (
    parents.append)

  def children(pairs: Any, path: tuple) -> tuple:
    # The common children (static attributes, Variables) are handled here, without a call.
    out = []
    append = out.append
    for k, v in pairs:
      t = type(v)
      kind = kinds.get(t) or _kind(v)
      if kind == _VAR:
        i = index.get(id(v))
        if i is None:
          i = index[id(v)] = len(refs)
          add_ref(v)
          add_leaf(v)
          add_path(path + (k,))
          add_parent(path)
          meta = v.__dict__["_meta"]
          append((k, ("var", i, t, _meta_items(meta) if meta else ())))
        else:
          append((k, ("ref", i)))
      elif kind == _STATIC:
        append((k, ("static", v)))
      elif kind == _HASHED:
        append((k, ("static", _hashable(v))))
      elif kind == _ARRAY_LEAF:
        loose.append(True)
        add_leaf(v)
        add_path(path + (k,))
        add_parent(path)
        append((k, _ARRAY))
      else:
        append((k, container(v, kind, path + (k,))))
    return tuple(out)

  def marked(d: dict, dynamic: tuple, marks: dict, path: tuple) -> tuple:
    # Children of an Object with attributes marked nnx.data: a marked value that is
    # static by kind (an int, a string) is a leaf all the same.
    out = []
    for k in dynamic:
      v = d[k]
      if marks.get(k) and v is not None and (kinds.get(type(v)) or _kind(v)) in (
          _STATIC, _HASHED):
        loose.append(True)
        add_leaf(v)
        add_path(path + (k,))
        add_parent(path)
        out.append((k, _ARRAY))
      else:
        out += children(((k, v),), path)
    return tuple(out)

  def container(value: Any, kind: int, path: tuple) -> tuple:
    if kind == _NODE or kind == _CUSTOM:
      i = index.get(id(value))
      if i is not None:
        return ("ref", i)
      i = index[id(value)] = len(refs)
      refs.append(value)
      if kind == _CUSTOM:
        return ("node", i, type(value), 0, children(value._graph_items(), path))
      d = value.__dict__
      layout = d.get("_nnx_layout")
      if layout is None or layout[0] != d.get("_nnx_version"):
        layout = d["_nnx_layout"] = _layout(d)
      _, statics, dynamic = layout
      marks = d.get("_nnx_kinds")
      if marks and True in marks.values():  # nnx.data on a value that is static by kind
        return ("node", i, type(value), len(statics), statics + marked(d, dynamic, marks, path))
      return ("node", i, type(value), len(statics),
              statics + children(zip(dynamic, map(d.__getitem__, dynamic), strict=True), path))
    if kind == _DICT:
      try:
        keys = sorted(value)
      except TypeError:  # keys JAX cannot order either: let JAX say so below
        pass
      else:
        return ("dict", children(zip(keys, map(value.__getitem__, keys), strict=True), path))
    elif kind == _LIST:
      return ("list", children(enumerate(value), path))
    elif kind == _TUPLE:
      return ("tuple", children(enumerate(value), path))
    if isinstance(value, ARRAY_TYPES):  # a tracer
      loose.append(True)
      leaves.append(value)
      paths.append(path)
      parents.append(path[:-1] if path else None)
      return _ARRAY
    flat, treedef = jax.tree_util.tree_flatten_with_path(value, is_leaf=lambda x: x
                                                         is not value)
    if treedef.num_nodes == 1:  # a non-array tracer
      return _static(value)
    return ("pytree", treedef, children([(_key(p[0]), c) for p, c in flat], path))

  kind = _kind(root)
  if kind == _STATIC or kind == _HASHED:
    root_def = _static(root)
  elif kind == _VAR or kind == _ARRAY_LEAF:  # a lone leaf: the only child of nothing
    (_, root_def), = children(((None, root),), ())
    if paths:  # not when it was reached before (a seeded walk)
      paths[0], parents[0] = (), None
  else:
    root_def = container(root, kind, ())
  return (GraphDef(root_def, tuple(paths), len(paths), None, len(refs)), leaves, paths, refs,
          parents), (
    not loose)


class _Walk(epoch.Recorded):
  """A cached walk of one root, validated like ``nnx.jit``'s cache entries."""

  __slots__ = ("walked", "roots")


_WALKS: dict = {}  # root key -> _Walk; entries die with their root objects
_MAX_WALKS = 64


def cached_walk(root: Any) -> tuple:
  """``walk(root)`` without ``refs`` (``None`` in its place), reused while the structure
  is unchanged, for roots that are an Object or a tuple/list of Objects. A cached walk
  has a sixth slot, a one-item list that ``graphlib`` fills with its own grouping.

  The cache holds the roots weakly (their death drops the entry) but the Variables and
  the GraphDef strongly: a static attribute that refers back to the root (a bound
  method) keeps it alive until the entry is evicted.
  """
  t = type(root)
  if t is tuple or t is list:
    nodes = root
    key = (t, *map(id, root))
  else:
    nodes = (root,)
    key = id(root)
  for n in nodes:
    kind = _KINDS.get(type(n)) or _kind(n)
    if kind != _NODE and kind != _CUSTOM:
      return walk(root)
  entry = _WALKS.get(key)
  if entry is not None and entry.current():
    return entry.walked
  walked, cacheable = _walk(root)
  if not cacheable:
    return walked
  refs = walked[3]
  entry = _Walk()
  # The last slot is a box for graphlib's leaves grouped by parent, made on first use.
  entry.walked = (walked[0], walked[1], walked[2], None, walked[4], [None])
  entry.record(refs)
  drop = functools.partial(_drop, key)
  entry.roots = [weakref.ref(n, drop) for n in nodes]  # no callback once the entry is gone
  _WALKS[key] = entry
  if len(_WALKS) > _MAX_WALKS:
    del _WALKS[next(iter(_WALKS))]
  return entry.walked


def _drop(key: Any, _: Any) -> None:
  _WALKS.pop(key, None)


def unflatten(graphdef: GraphDef, leaves: list, existing: dict[int, Any] | None = None,
              share: bool = False, seed: dict[int, Any] | None = None) -> tuple[Any, list]:
  """Rebuilds a graph: ``(root, refs)``; leaves may be Variables, arrays or other values.

  Objects and Variables whose index is in ``existing`` are updated in place and reused.
  ``share``: Variable leaves go into the graph themselves, not copies. ``seed``: nodes an
  earlier merge built (``{index: node}``), which ``("ref", i)`` entries may name.
  """
  return _rebuild(graphdef, iter(leaves).__next__, existing or {}, None, None, share, seed)


def unflatten_state(graphdef: GraphDef, state: Any, flat: dict | None = None,
                    share: bool = False) -> tuple[Any, list] | None:
  """``unflatten`` with each leaf looked up in a nested State (or dict) by key as the walk
  descends, so no path is built; ``None`` when a leaf is missing. ``flat`` is a plan from
  ``graph_builder``: each container entry of the GraphDef (by id) to ``(builder, first
  index)``, or to ``(None, number of its children with leaves)``; with it, a mapping with
  more keys than that raises ``Recount``. ``share``: the State's Variables go into the graph
  themselves (``merge(copy=False)``), not copies."""
  try:
    return _rebuild(graphdef, None, {}, {"root": state}, flat, share)
  except _Missing:
    return None


class _Missing(Exception):
  pass


class Recount(Exception):
  """With a plan: a mapping of the State has more keys than its entry has children with
  leaves. Extra leaves, or only an empty sub-State: counting the leaves tells which."""


_EMPTY: dict = {}


def _mapping(x: Any) -> dict:
  t = type(x)  # State is an ABC: its isinstance check is slow, so try the exact types first
  if t is State:
    return x._mapping
  if t is dict:
    return x
  return x._mapping if isinstance(x, State) else _EMPTY


@gc_paused
def _rebuild(graphdef: GraphDef, next_leaf: Any, existing: dict, root_src: dict | None,
             flat: dict | None = None, share: bool = False,
             seed: dict[int, Any] | None = None) -> tuple[Any, list]:
  """Leaves come from ``next_leaf()``, or from ``root_src["root"]`` (a nested mapping)."""
  refs: list = [None] * graphdef.num_refs
  if seed:
    for i, node in seed.items():
      if i < len(refs):
        refs[i] = node
  kinds = _KINDS
  new = object.__new__
  trace = current_trace()  # where the new Variables are made (see Variable._check_trace)

  def values(items: tuple, src: dict | None) -> list:
    # Variables and statics (most children) are made here, without a call.
    out = []
    append = out.append
    for k, sub in items:
      tag = sub[0]
      if tag == "var" or tag == "array":
        if src is None:
          leaf = next_leaf()
        else:
          leaf = src.get(k, _EMPTY)
          if leaf is _EMPTY:
            raise _Missing
        if isinstance(leaf, Variable):
          if share and tag == "var":
            refs[sub[1]] = leaf
            append(leaf)
            continue
          ld = leaf.__dict__
          value, meta = ld["_raw"], ld["_meta"]
        elif src is not None and _mapping(leaf) is not _EMPTY:  # a State where a leaf goes
          raise _Missing
        else:
          value, meta = leaf, {mk: _unwrap(mv) for mk, mv in sub[3]} if tag == "var" else {}
        if tag == "array":
          append(value)
          continue
        i = sub[1]
        var = existing.get(i) if existing else None
        if var is None:
          var = new(sub[2])
          vd = var.__dict__
          vd["_raw"], vd["_meta"], vd["_nnx_version"], vd["_trace"] = value, dict(meta), 0, trace
        else:
          var.__dict__["_raw"] = value
          if var._meta != meta:
            var.__dict__["_meta"] = dict(meta)
            var._bump()
        refs[i] = var
        append(var)
      elif tag == "static":
        v = sub[1]
        append(v.value if type(v) is _ById else v)
      elif tag == "ref":
        append(refs[sub[1]])
      else:
        sub_src = None if src is None else _mapping(src.get(k))
        planned = flat.get(id(sub)) if flat else None
        if planned is None:
          if flat:  # a plan covers every container: this one is not this GraphDef's
            raise Recount
          append(build(sub, sub_src))
        elif planned[0] is None:  # built here; its mapping holds what it needs, no more
          if len(sub_src) != planned[1]:
            raise Recount
          append(build(sub, sub_src))
        else:  # a flat entry with a compiled builder (graph_builder)
          append(planned[0](sub_src, trace, refs, planned[1], share))
    return out

  def build(d: tuple, src: dict | None) -> Any:
    tag = d[0]
    if tag == "node":
      _, i, cls, n, items = d
      obj = existing.get(i)
      if obj is None and kinds.get(cls) == _NODE:  # a fresh plain Object: fill __dict__
        obj = refs[i] = new(cls)  # what Object._graph_empty does, inlined
        od = obj.__dict__
        od["_nnx_version"] = 0
        statics, dynamic = items[:n], items[n:]
        for k, (_, v) in statics:
          od[k] = v.value if type(v) is _ById else v
        for (k, sub), v in zip(dynamic, values(dynamic, src), strict=True):
          if sub[0] == "list" or sub[0] == "dict":  # static config: tracked, as on assignment
            v = _own(v, [weakref.ref(obj)])
          od[k] = v
        od["_nnx_layout"] = (od["_nnx_version"], statics, tuple([k for k, _ in dynamic]))
        return obj
      fresh = obj is None
      if fresh:
        obj = cls._graph_empty()
      refs[i] = obj
      obj._graph_set(list(zip([k for k, _ in items], values(items, src), strict=True)),
                     bump=not fresh)
      return obj
    if tag == "dict":
      return {k: v for (k, _), v in zip(d[1], values(d[1], src), strict=True)}
    if tag == "list":
      return values(d[1], src)
    if tag == "tuple":
      return tuple(values(d[1], src))
    return d[1].unflatten(values(d[2], src))

  root = values((("root", graphdef.root),), root_src)[0]
  return root, refs


MISSING = object()


def child(node: Any, key: Any) -> Any:
  """What the walk reaches from ``node`` under ``key`` (``MISSING`` when nothing there, or
  when ``node`` is a pytree other than a list, tuple, namedtuple or dict)."""
  kind = _KINDS.get(type(node)) or _kind(node)
  if kind == _NODE:
    return MISSING if key in _SKIP else node.__dict__.get(key, MISSING)
  if kind == _DICT or kind == _CUSTOM and isinstance(node, dict):
    return dict.get(node, key, MISSING)
  if isinstance(node, list | tuple) and kind != _CUSTOM:
    if isinstance(node, tuple) and hasattr(node, "_fields"):  # a namedtuple: keyed by name
      return getattr(node, key, MISSING) if key in node._fields else MISSING
    return node[key] if type(key) is int and -1 < key < len(node) else MISSING
  if kind == _CUSTOM:
    try:
      return node._graph_get(key)
    except (AttributeError, KeyError, IndexError, TypeError):
      return MISSING
  return MISSING


def enterable(node: Any) -> bool:
  """Whether ``child`` can look into ``node``."""
  kind = _KINDS.get(type(node)) or _kind(node)
  return kind in _ENTERABLE or (kind == _OTHER and isinstance(node, tuple)
                                and hasattr(node, "_fields"))


_ENTERABLE = frozenset({_NODE, _CUSTOM, _DICT, _LIST, _TUPLE})


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
    head, items = f"{d[2].__name__}#{d[1]}", d[4]
    if d[3]:  # statics first: show them in name order with the rest
      items = tuple(sorted(items, key=lambda kv: kv[0]))
  else:  # dict, list, tuple or another pytree
    head, items = kind, d[-1]
  if not items:
    return head + "()"
  pad = "  " * (depth + 1)
  lines = [f"{pad}{k}={_tree_repr(v, depth + 1)}," for k, v in items]
  return head + "(\n" + "\n".join(lines) + "\n" + "  " * depth + ")"
