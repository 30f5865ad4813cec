"""``nnx.List`` and ``nnx.Dict``: a ``list`` and a ``dict`` that are graph nodes.

Both are Modules, as in Flax (so ``iter_modules`` yields them and ``train()`` / ``eval()``
reach through them), and also subclasses of ``list`` / ``dict``. An Object converts a
plain ``list`` / ``dict`` holding graph data into one of these on assignment, so their
mutations bump its structural version like attribute assignments do.
"""

from __future__ import annotations

from typing import Any

from flaxen.errors.nnx import MissingKeyError
from flaxen.nnx.module import Module
from flaxen.nnx.object import _MISSING, _convert, _first, _is_structural, _mutating

__all__ = ["List", "Dict"]


class _Container(Module):
  """What List and Dict share: item access as graph access, and identity equality (a
  graph node is one object, whatever it holds)."""

  def _graph_get(self, key: Any) -> Any:
    return self[key]

  def _graph_del(self, key: Any) -> None:
    del self[key]

  __hash__ = object.__hash__

  def __eq__(self, other: object) -> bool:
    return self is other

  def __repr__(self) -> str:
    builtin = list if isinstance(self, list) else dict
    return f"{type(self).__name__}({builtin.__repr__(self)})"


class List(_Container, list):
  """A ``list`` that is a graph node: its items may be Modules, Variables or arrays.

  >>> from flaxen import nnx
  >>> layers = nnx.List([nnx.Param(1.0)])
  >>> layers.append(nnx.Param(2.0))
  >>> [p.value for p in layers]
  [1.0, 2.0]
  """

  def __init__(self, it: Any = None, /):
    list.__init__(self, (_convert(v, self) for v in (it or ())))

  def append(self, value: Any) -> None:
    """Appends ``value`` (a plain list/dict holding data becomes a List/Dict)."""
    list.append(self, _convert(value, self))
    self._bump()

  def insert(self, index: int, value: Any) -> None:
    """Inserts ``value`` before ``index``."""
    list.insert(self, index, _convert(value, self))
    self._bump()

  def _graph_items(self) -> list[tuple[Any, Any]]:
    return list(enumerate(self))

  def _graph_set(self, items: list[tuple[Any, Any]], bump: bool = True) -> None:
    list.__setitem__(self, slice(None), [v for _, v in items])
    if bump:
      self._bump()

  def _graph_put(self, key: Any, value: Any) -> None:
    if key == len(self):
      self.append(value)
    else:
      self[key] = value


for _name in ("__setitem__", "__delitem__", "extend", "pop", "remove",
              "clear", "sort", "reverse", "__iadd__", "__imul__"):
  setattr(List, _name, _mutating(list, _name))


class Dict(_Container, dict):
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
      dict.__setitem__(self, k, _convert(v, self))

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
    value = _convert(value, self)
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

  def _graph_put(self, key: Any, value: Any) -> None:
    self[key] = value


for _name in ("__delitem__", "pop", "popitem", "clear", "update", "setdefault", "__ior__"):
  setattr(Dict, _name, _mutating(dict, _name))


class _KeyFirst:
  """A Module method seen through a Dict: a key of the same name wins, as in Flax, where a
  Dict's keys are its attributes (``nnx.Dict(train=m, eval=m2).train`` is ``m``)."""

  def __init__(self, name: str):
    self.name = name

  def __get__(self, obj: Any, objtype: Any = None) -> Any:
    method = getattr(Module, self.name)
    if obj is None:
      return method
    if dict.__contains__(obj, self.name):
      return dict.__getitem__(obj, self.name)
    return method.__get__(obj, objtype)


for _name in ("sow", "perturb", "iter_modules", "iter_children", "set_attributes", "train",
              "eval"):
  setattr(Dict, _name, _KeyFirst(_name))


class _AutoList(List):
  """What a plain ``list`` holding graph data becomes on assignment: tracked like a List,
  but, being a plain list in Flax, no Module that ``iter_modules`` lists."""

  _nnx_listed = False


class _AutoDict(Dict):
  """The ``dict`` counterpart of :class:`_AutoList`."""

  _nnx_listed = False


_AutoList.__name__, _AutoDict.__name__ = "List", "Dict"  # reprs and messages as before
