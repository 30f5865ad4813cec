"""Graph objects: plain Python objects whose attributes form the nodes of an NNX graph.

``Object`` (also exported as ``Pytree``) is the base of ``Module``, ``Rngs``, ``Optimizer``
and the containers ``List`` and ``Dict``. It adds two things to a plain object:

* a structural version: assigning or deleting an attribute that changes the graph's shape
  (a Module, Variable or container; a different static value) bumps the object's version
  and the global :mod:`~flaxen.nnx.epoch`, which is how cached transforms learn that their
  cached graph walk is stale. Writing a new array into a Variable is not structural.
* JAX pytree registration: ``jax.tree.map`` and plain ``jax.jit`` see an object's data
  attributes (Variables, arrays, sub-objects) as children and the rest as static.

Plain ``list``/``dict`` values holding graph data are converted to ``List``/``Dict`` (which
subclass ``list``/``dict``) on assignment, so their mutations are seen too. Plain ones
holding only static config (``self.sizes = [1, 2]``, nested ones included) become
``StaticList``/``StaticDict``: still lists and dicts to JAX and to ``==``, but an in-place
change bumps the version of the objects holding them.

>>> from flaxen import nnx
>>> class Foo(nnx.Object):
...   def __init__(self):
...     self.layers = [nnx.Param(1.0), nnx.Param(2.0)]
>>> type(Foo().layers).__name__, isinstance(Foo().layers, list)
('List', True)
"""

from __future__ import annotations

import weakref
from typing import Any

import jax
import numpy as np
from jax.core import Tracer

from flaxen.errors.nnx import TraceContextError
from flaxen.errors.nnx_tree import StaticDataError
from flaxen.nnx import epoch
from flaxen.nnx.pytree_annotations import DATA_TYPES, Marked, class_kinds, has_data
from flaxen.nnx.variables import Variable, _value_repr, current_trace

__all__ = ["Object", "Pytree", "StaticList", "StaticDict", "is_graph_node", "ARRAY_TYPES"]

ARRAY_TYPES = (jax.Array, np.ndarray)  # numpy scalars stay static config
_KEPT = ("_nnx_version", "_nnx_tracked")  # bookkeeping that survives _graph_set
_RESERVED = frozenset({*_KEPT, "_nnx_layout"})  # bookkeeping, not graph data
_MISSING = object()


def is_graph_node(x: Any) -> bool:
  """Whether ``x`` is a graph node (an ``Object`` or a ``Variable``) that transforms track."""
  return isinstance(x, _NODE_TYPES)


def is_data(value: Any) -> bool:
  """Whether ``value`` holds state (Variables, arrays, graph objects) rather than config."""
  if isinstance(value, (Object, Variable, *ARRAY_TYPES)):
    return True
  if isinstance(value, str | int | float | bool | complex | type) or value is None:
    return False
  if len(DATA_TYPES) > _N_BUILTIN_DATA and isinstance(value, tuple(DATA_TYPES)):
    return True  # a type given to nnx.register_data_type
  if isinstance(value, list | tuple):
    return any(is_data(v) for v in value)
  if isinstance(value, dict):
    return any(is_data(v) for v in value.values())
  return False


def _convert(value: Any, owner: Any = None) -> Any:
  """Plain lists/dicts holding data become tracked ``List``/``Dict`` containers; static
  ones become ``StaticList``/``StaticDict`` owned by ``owner``."""
  t = type(value)
  if t is list or t is dict or t is StaticList or t is StaticDict:
    if is_data(value):
      if t is list or t is dict:
        # The containers are Modules (as in Flax), and modules import this file.
        from flaxen.nnx.containers import _AutoDict, _AutoList
        return (_AutoList if t is list else _AutoDict)(value)
      return value
    if owner is not None:
      return _own(value, [weakref.ref(owner)])
  return value


def _own(value: Any, owners: list) -> Any:
  """``value`` with its plain (or tracked) static lists/dicts, nested ones too, tracked by
  ``owners`` (weak references to the Objects to bump)."""
  t = type(value)
  if t is list or t is StaticList:
    out = value if t is StaticList else StaticList(value)
    list.__setitem__(out, slice(None), [_own(v, owners) for v in out])
  elif t is dict or t is StaticDict:
    out = value if t is StaticDict else StaticDict(value)
    for k, v in dict.items(out):
      dict.__setitem__(out, k, _own(v, owners))
  else:
    return value
  mine = out._owners
  for ref in owners:
    if ref not in mine:  # weakrefs compare by their referents
      mine.append(ref)
  if len(mine) > 8:  # drop owners that died
    mine[:] = [r for r in mine if r() is not None]
  return out


def _first(item: tuple) -> Any:
  return item[0]


def _is_structural(old: Any, new: Any) -> bool:
  if old is new:
    return False
  if old is _MISSING:
    return True
  if isinstance(old, ARRAY_TYPES) and isinstance(new, ARRAY_TYPES):
    return False  # a new array value; shapes are JAX's business
  if type(old) is not type(new) or isinstance(new, Object | Variable):
    return True
  try:
    return bool(old != new)
  except Exception:  # e.g. tuples of arrays: treat as changed
    return True


def _check_tracer_owner(obj: Any, name: str) -> None:
  """A tracer may only be stored on an Object of the current trace (as a Variable's value,
  see ``Variable._check_trace``): one closed over by the traced function would keep it
  after the trace ends. Objects record no trace, so their Variables (or, lacking any, those
  of the nearest descendants, a few levels down) tell: if all that recorded one were made
  outside this trace, so was the Object. Pytree-unflattened copies record none: unchecked."""
  now, values = current_trace(), [v for _, v in obj._graph_items()]
  for _ in range(4):
    made = [t for v in values if isinstance(v, Variable)
            and (t := v.__dict__.get("_trace")) is not None]
    if made:
      if all(t is not now for t in made):
        raise TraceContextError(obj, name)
      return
    values = [c for v in values if isinstance(v, Object) for _, c in v._graph_items()]


class Object:
  """Base class of NNX graph objects (Modules, Rngs, Optimizers, containers)."""

  def __init_subclass__(cls, pytree: bool = True, **kwargs: Any):
    super().__init_subclass__(**kwargs)
    cls._nnx_pytree = pytree  # tree mode (graph=False) refuses classes that opt out
    # Fields marked with nnx.data() / nnx.static() / Data[...] / Static[...]: copied into
    # each instance's _nnx_kinds.
    cls._nnx_class_kinds = class_kinds(cls) or None
    if pytree:  # ``class M(nnx.Module, pytree=False)`` opts out of JAX pytree registration
      _register(cls)

  def __new__(cls, *args: Any, **kwargs: Any):
    obj = super().__new__(cls)
    obj.__dict__["_nnx_version"] = 0
    if cls._nnx_class_kinds:
      obj.__dict__["_nnx_kinds"] = dict(cls._nnx_class_kinds)
    return obj

  def __setattr__(self, name: str, value: Any) -> None:
    if isinstance(value, Tracer):
      _check_tracer_owner(self, name)
    if type(value) is Marked:
      value = self._nnx_mark(name, value)
    else:
      kinds = self.__dict__.get("_nnx_kinds")
      if kinds and kinds.get(name) is False and has_data(value):
        field = name in (type(self)._nnx_class_kinds or ())
        raise StaticDataError(value, name, field=field)
    value = _convert(value, self)
    old = self.__dict__.get(name, _MISSING)
    object.__setattr__(self, name, value)
    if _is_structural(old, value):
      self._bump()

  def __delattr__(self, name: str) -> None:
    object.__delattr__(self, name)
    self._bump()

  def _nnx_mark(self, name: str, marked: Marked) -> Any:
    """Records ``nnx.data`` / ``nnx.static`` for ``name``; returns the bare value."""
    d = self.__dict__
    kinds = d.get("_nnx_kinds") or {}
    if kinds.get(name) is not marked.is_data:
      d["_nnx_kinds"] = {**kinds, name: marked.is_data}  # a new dict: walks compare by value
      self._bump()
    return marked.value

  def _bump(self) -> None:
    d = self.__dict__
    d["_nnx_version"] += 1
    if "_nnx_tracked" in d:  # only objects a transform cache has seen can make it stale
      epoch.bump()

  # ------------------------------------------------- the graph protocol of a node

  def _graph_items(self) -> list[tuple[Any, Any]]:
    """``(key, value)`` pairs of the node's children, sorted by name as Flax orders them."""
    return sorted((kv for kv in self.__dict__.items() if kv[0] not in _RESERVED), key=_first)

  @classmethod
  def _graph_empty(cls) -> Object:
    """A new, empty node of this class (``__init__`` is not called)."""
    return Object.__new__(cls)

  def _graph_set(self, items: list[tuple[Any, Any]], bump: bool = True) -> None:
    """Replaces all children with ``items`` (``bump=False`` for a node nobody has seen)."""
    d = self.__dict__
    reserved = [(k, d[k]) for k in _KEPT if k in d]  # not the walk's cached layout
    d.clear()
    d.update(items)
    d.update(reserved)
    if bump:
      self._bump()

  def _graph_get(self, key: Any) -> Any:
    return getattr(self, key)

  def _graph_put(self, key: Any, value: Any) -> None:
    setattr(self, key, value)

  def _graph_del(self, key: Any) -> None:
    delattr(self, key)

  def __repr__(self) -> str:
    return _repr(self, 0, set())


# ----------------------------------------------------------------- pytree registration


_TYPE_DATA: dict[type, bool] = {}  # is_data of the values whose type alone decides it
_TYPE_DATA_FOR = [0]  # len(DATA_TYPES) the cache was made for (register_data_type adds)


def _data(v: Any) -> bool:
  t = type(v)
  known = _TYPE_DATA.get(t)
  if known is not None:
    return known
  out = is_data(v)
  if not issubclass(t, list | tuple | dict):  # containers: it depends on their items
    _TYPE_DATA[t] = out
  return out


def _flatten(obj: Object):
  if len(DATA_TYPES) != _TYPE_DATA_FOR[0]:
    _TYPE_DATA.clear()
    _TYPE_DATA_FOR[0] = len(DATA_TYPES)
  keys, mask, children, static = [], [], [], []
  kinds = obj.__dict__.get("_nnx_kinds")
  for k, v in obj._graph_items():
    if k == "_nnx_kinds":  # implied by the mask (see _unflatten): not part of the structure
      continue
    m = kinds[k] if kinds and k in kinds else _data(v)
    keys.append(k)
    mask.append(m)
    if m:
      children.append(v)
    else:
      static.append(v)
  return children, (type(obj), tuple(keys), tuple(mask), tuple(static))


def _flatten_with_keys(obj: Object):
  children, aux = _flatten(obj)
  keys = [k for k, m in zip(aux[1], aux[2], strict=True) if m]
  return list(zip(map(_key_entry, keys), children, strict=True)), aux


def _unflatten(aux, children):
  cls, keys, mask, static = aux
  data, rest = iter(children), iter(static)
  obj = cls._graph_empty()
  items = [(k, next(data) if m else next(rest)) for k, m in zip(keys, mask, strict=True)]
  obj._graph_set(items, bump=False)
  # A data leaf that is not data by its type (an int marked nnx.data, a prefix's axis)
  # keeps its mark, so the object flattens the same way again. Checked per child only
  # when a child's class is not yet known to be data (one set operation otherwise).
  marks = {}
  if not _DATA_CLASSES.issuperset(map(type, children)):
    for (k, v), m in zip(items, mask, strict=True):
      if m:
        if is_data(v):
          _DATA_CLASSES.add(type(v))
        else:
          marks[k] = True
  if cls._nnx_class_kinds:  # the fields' own kinds (static ones included)
    marks = {**cls._nnx_class_kinds, **marks}
  if marks:
    obj.__dict__["_nnx_kinds"] = marks
  return obj


def _key_entry(k: Any):
  if isinstance(k, int):
    return jax.tree_util.SequenceKey(k)
  return jax.tree_util.GetAttrKey(k) if isinstance(k, str) else jax.tree_util.DictKey(k)


def _register(cls: type) -> None:
  jax.tree_util.register_pytree_with_keys(cls, _flatten_with_keys, _unflatten, _flatten)


_register(Object)
DATA_TYPES.append(Object)
_DATA_CLASSES: set[type] = set()  # classes of unflattened children found to be data
_N_BUILTIN_DATA = len(DATA_TYPES)


Pytree = Object
_NODE_TYPES = (Object, Variable)


def _repr(obj: Any, depth: int, seen: set[int]) -> str:
  if not isinstance(obj, Object):
    return _value_repr(obj) if isinstance(obj, ARRAY_TYPES) else repr(obj)
  if id(obj) in seen:
    return f"{type(obj).__name__}(...)"
  seen = seen | {id(obj)}
  pad = "  " * (depth + 1)
  items = [f"{pad}{k}={_repr(v, depth + 1, seen)}," for k, v in obj._graph_items()
           if not (isinstance(k, str) and k.startswith("_"))]
  if not items:
    return f"{type(obj).__name__}()"
  return f"{type(obj).__name__}(\n" + "\n".join(items) + "\n" + "  " * depth + ")"


def _mutating(container: type, name: str):
  base = getattr(container, name)

  def method(self, *args, **kwargs):
    out = base(self, *args, **kwargs)
    self._bump()
    return self if name.startswith("__i") else out

  method.__name__ = name
  return method


# ------------------------------------------------- static containers held by Objects


class StaticList(list):
  """A plain list of static config held by Objects: a ``list`` to JAX, ``==`` and
  ``isinstance``, whose in-place changes bump the holders' versions (so ``nnx.jit`` sees
  them). Made on assignment; a copy (``list(x)``, pickle) is a plain list again."""

  __slots__ = ("_owners", "__weakref__")

  def __init__(self, *args: Any):
    list.__init__(self, *args)
    self._owners: list = []

  def _bump(self) -> None:
    _own(self, self._owners)  # items added by the change are tracked too
    for ref in self._owners:
      owner = ref()
      if owner is not None:
        owner._bump()

  def __reduce__(self):
    return list, (list(self),)


class StaticDict(dict):
  """The ``dict`` counterpart of :class:`StaticList`."""

  __slots__ = ("_owners", "__weakref__")

  def __init__(self, *args: Any, **kwargs: Any):
    dict.__init__(self, *args, **kwargs)
    self._owners: list = []

  _bump = StaticList._bump

  def __reduce__(self):
    return dict, (dict(self),)


for _name in ("__setitem__", "__delitem__", "append", "extend", "insert", "pop", "remove",
              "clear", "sort", "reverse", "__iadd__", "__imul__"):
  setattr(StaticList, _name, _mutating(list, _name))
for _name in ("__setitem__", "__delitem__", "pop", "popitem", "clear", "update", "setdefault",
              "__ior__"):
  setattr(StaticDict, _name, _mutating(dict, _name))


def _flatten_list(x: StaticList):
  return [(jax.tree_util.SequenceKey(i), v) for i, v in enumerate(x)], None


def _flatten_dict(x: StaticDict):
  keys = sorted(x)
  return [(jax.tree_util.DictKey(k), x[k]) for k in keys], tuple(keys)


# Pytrees like the builtins they stand for (unflattened as plain ones).
jax.tree_util.register_pytree_with_keys(
  StaticList, _flatten_list, lambda _, children: list(children))
jax.tree_util.register_pytree_with_keys(
  StaticDict, _flatten_dict, lambda keys, children: dict(zip(keys, children, strict=True)))
