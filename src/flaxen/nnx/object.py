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
subclass ``list``/``dict``) on assignment, so their mutations are seen too.

>>> from flaxen import nnx
>>> class Foo(nnx.Object):
...   def __init__(self):
...     self.layers = [nnx.Param(1.0), nnx.Param(2.0)]
>>> type(Foo().layers).__name__, isinstance(Foo().layers, list)
('List', True)
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from flaxen.errors.nnx import MissingKeyError
from flaxen.nnx import epoch
from flaxen.nnx.variables import Variable, _value_repr

__all__ = ["Object", "Pytree", "List", "Dict", "is_graph_node", "ARRAY_TYPES"]

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
  if isinstance(value, list | tuple):
    return any(is_data(v) for v in value)
  if isinstance(value, dict):
    return any(is_data(v) for v in value.values())
  return False


def _convert(value: Any) -> Any:
  """Plain lists/dicts holding data become tracked ``List``/``Dict`` containers."""
  if type(value) is list and is_data(value):
    return List(value)
  if type(value) is dict and is_data(value):
    return Dict(value)
  return value


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


class Object:
  """Base class of NNX graph objects (Modules, Rngs, Optimizers, containers)."""

  def __init_subclass__(cls, pytree: bool = True, **kwargs: Any):
    super().__init_subclass__(**kwargs)
    if pytree:  # ``class M(nnx.Module, pytree=False)`` opts out of JAX pytree registration
      _register(cls)

  def __new__(cls, *args: Any, **kwargs: Any):
    obj = super().__new__(cls)
    obj.__dict__["_nnx_version"] = 0
    return obj

  def __setattr__(self, name: str, value: Any) -> None:
    value = _convert(value)
    old = self.__dict__.get(name, _MISSING)
    object.__setattr__(self, name, value)
    if _is_structural(old, value):
      self._bump()

  def __delattr__(self, name: str) -> None:
    object.__delattr__(self, name)
    self._bump()

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


def _flatten_with_keys(obj: Object):
  keys, mask, children, static = [], [], [], []
  for k, v in obj._graph_items():
    keys.append(k)
    mask.append(is_data(v))
    if mask[-1]:
      children.append((_key_entry(k), v))
    else:
      static.append(v)
  return children, (type(obj), tuple(keys), tuple(mask), tuple(static))


def _flatten(obj: Object):
  children, aux = _flatten_with_keys(obj)
  return [c for _, c in children], aux


def _unflatten(aux, children):
  cls, keys, mask, static = aux
  data, rest = iter(children), iter(static)
  obj = cls._graph_empty()
  items = [(k, next(data) if m else next(rest)) for k, m in zip(keys, mask, strict=True)]
  obj._graph_set(items, bump=False)
  return obj


def _key_entry(k: Any):
  if isinstance(k, int):
    return jax.tree_util.SequenceKey(k)
  return jax.tree_util.GetAttrKey(k) if isinstance(k, str) else jax.tree_util.DictKey(k)


def _register(cls: type) -> None:
  jax.tree_util.register_pytree_with_keys(cls, _flatten_with_keys, _unflatten, _flatten)


_register(Object)


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


class List(Object, list):
  """A ``list`` that is a graph node: its items may be Modules, Variables or arrays.

  >>> from flaxen import nnx
  >>> layers = nnx.List([nnx.Param(1.0)])
  >>> layers.append(nnx.Param(2.0))
  >>> [p.value for p in layers]
  [1.0, 2.0]
  """

  def __init__(self, items: Any = ()):
    list.__init__(self, (_convert(v) for v in items))

  def _graph_items(self) -> list[tuple[Any, Any]]:
    return list(enumerate(self))

  def _graph_set(self, items: list[tuple[Any, Any]], bump: bool = True) -> None:
    list.__setitem__(self, slice(None), [v for _, v in items])
    if bump:
      self._bump()

  def _graph_get(self, key: Any) -> Any:
    return self[key]

  def _graph_put(self, key: Any, value: Any) -> None:
    if key == len(self):
      self.append(value)
    else:
      self[key] = value

  def _graph_del(self, key: Any) -> None:
    del self[key]

  __hash__ = object.__hash__

  def __eq__(self, other: object) -> bool:
    return self is other

  def __repr__(self) -> str:
    return f"List({list.__repr__(self)})"


for _name in ("__setitem__", "__delitem__", "append", "extend", "insert", "pop", "remove",
              "clear", "sort", "reverse", "__iadd__", "__imul__"):
  setattr(List, _name, _mutating(list, _name))


class Dict(Object, dict):
  """A ``dict`` that is a graph node, with attribute access to its string keys.

  >>> from flaxen import nnx
  >>> d = nnx.Dict(a=nnx.Param(1.0))
  >>> d.b = nnx.Param(2.0)
  >>> sorted(d), d["b"].value
  (['a', 'b'], 2.0)
  """

  def __init__(self, *args: Any, **kwargs: Any):
    dict.__init__(self, *args, **kwargs)
    for k, v in dict.items(self):
      dict.__setitem__(self, k, _convert(v))

  def __getattr__(self, name: str) -> Any:
    if name.startswith("__"):
      raise AttributeError(name)
    try:
      return self[name]
    except KeyError:
      raise MissingKeyError("nnx.Dict", name, dict.keys(self)) from None

  def __setattr__(self, name: str, value: Any) -> None:
    self[name] = value

  def __delattr__(self, name: str) -> None:
    del self[name]

  def __setitem__(self, key: Any, value: Any) -> None:
    value = _convert(value)
    old = dict.get(self, key, _MISSING)
    dict.__setitem__(self, key, value)
    if _is_structural(old, value):
      self._bump()

  def _graph_items(self) -> list[tuple[Any, Any]]:
    try:
      return sorted(dict.items(self), key=_first)
    except TypeError:  # keys of mixed types: keep insertion order
      return list(dict.items(self))

  def _graph_set(self, items: list[tuple[Any, Any]], bump: bool = True) -> None:
    dict.clear(self)
    dict.update(self, items)
    if bump:
      self._bump()

  def _graph_get(self, key: Any) -> Any:
    return self[key]

  def _graph_put(self, key: Any, value: Any) -> None:
    self[key] = value

  def _graph_del(self, key: Any) -> None:
    del self[key]

  __hash__ = object.__hash__

  def __eq__(self, other: object) -> bool:
    return self is other

  def __repr__(self) -> str:
    return f"Dict({dict.__repr__(self)})"


for _name in ("__delitem__", "pop", "popitem", "clear", "update", "setdefault", "__ior__"):
  setattr(Dict, _name, _mutating(dict, _name))
