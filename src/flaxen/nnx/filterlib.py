"""Filters: predicates ``(path, value) -> bool`` that select parts of a graph's state.

Literals convert to predicates with :func:`to_predicate`: a type matches instances (or
values whose ``.type`` is a subclass), a string matches values whose ``tag`` equals it,
``...``/``True`` match everything, ``None``/``False`` nothing, a tuple any of its filters,
a list all of them; other callables are used as they are.

>>> from flaxen import nnx
>>> pred = nnx.filterlib.to_predicate((nnx.Param, nnx.PathContains("bias")))
>>> pred(("w",), nnx.Param(1.0)), pred(("bias",), nnx.BatchStat(1.0)), pred(("w",), 1.0)
(True, True, False)
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any as _Any

from flaxen.errors.nnx import InvalidFilterError

__all__ = [
  "Filter", "to_predicate", "OfType", "WithTag", "PathContains", "Any", "All", "Not",
  "Everything", "Nothing",
]

Filter = _Any
Predicate = Callable[[tuple, _Any], bool]


def to_predicate(filter: Filter) -> Predicate:
  """Converts a filter literal into a predicate ``(path, value) -> bool``."""
  if isinstance(filter, str):
    return WithTag(filter)
  if isinstance(filter, type):
    return OfType(filter)
  if filter is Ellipsis or filter is True:
    return Everything()
  if filter is None or filter is False:
    return Nothing()
  if isinstance(filter, tuple):
    return Any(*filter)
  if isinstance(filter, list):
    return All(*filter)
  if callable(filter):
    return filter
  raise InvalidFilterError(filter)


def by_type(predicate: Predicate) -> bool:
  """Whether ``predicate``'s answer depends only on the value's class (subclasses of the
  filter classes may override ``__call__``, so only the classes here are trusted)."""
  return type(predicate) in _TYPED and predicate._by_type


class _Predicate:
  """Value semantics for the filter classes: equal when their fields are equal.

  ``_by_type`` says that the answer depends only on the class of the value (never on the
  path or the instance), so a caller may ask once per class.
  """

  _by_type = False

  def _fields(self) -> tuple:
    return tuple(self.__dict__.values())

  def __eq__(self, other: object) -> bool:
    return type(self) is type(other) and self._fields() == other._fields()

  def __hash__(self) -> int:
    return hash((type(self), self._fields()))

  def __repr__(self) -> str:
    return f"{type(self).__name__}({', '.join(repr(f) for f in self._fields())})"


class OfType(_Predicate):
  """Matches instances of ``type``, or values whose ``.type`` is a subclass of it."""

  _by_type = True

  def __init__(self, type: type):
    self.type = type

  def __call__(self, path: tuple, x: _Any) -> bool:
    if isinstance(x, self.type):
      return True
    t = getattr(x, "type", None)
    return isinstance(t, builtins.type) and issubclass(t, self.type)


class WithTag(_Predicate):
  """Matches values whose ``tag`` attribute equals ``tag`` (e.g. Rng state of a stream)."""

  def __init__(self, tag: str):
    self.tag = tag

  def __call__(self, path: tuple, x: _Any) -> bool:
    return getattr(x, "tag", None) == self.tag


class PathContains(_Predicate):
  """Matches values whose path contains ``key`` (as a substring of a key if not exact)."""

  def __init__(self, key: _Any, exact: bool = True):
    self.key = key
    self.exact = exact

  def __call__(self, path: tuple, x: _Any) -> bool:
    if self.exact:
      return self.key in path
    return builtins.any(str(self.key) in str(k) for k in path)


class Any(_Predicate):
  """Matches values that match any of ``filters``."""

  def __init__(self, *filters: Filter):
    self.predicates = tuple(to_predicate(f) for f in filters)

  @property
  def _by_type(self) -> bool:
    return builtins.all(by_type(p) for p in self.predicates)

  def __call__(self, path: tuple, x: _Any) -> bool:
    return builtins.any(p(path, x) for p in self.predicates)


class All(_Predicate):
  """Matches values that match all of ``filters``."""

  def __init__(self, *filters: Filter):
    self.predicates = tuple(to_predicate(f) for f in filters)

  @property
  def _by_type(self) -> bool:
    return builtins.all(by_type(p) for p in self.predicates)

  def __call__(self, path: tuple, x: _Any) -> bool:
    return builtins.all(p(path, x) for p in self.predicates)


class Not(_Predicate):
  """Matches values that do not match ``filter``."""

  def __init__(self, collection_filter: Filter):
    self.predicate = to_predicate(collection_filter)

  @property
  def _by_type(self) -> bool:
    return by_type(self.predicate)

  def __call__(self, path: tuple, x: _Any) -> bool:
    return not self.predicate(path, x)


class Everything(_Predicate):
  """Matches every value."""

  _by_type = True

  def __call__(self, path: tuple, x: _Any) -> bool:
    return True


class Nothing(_Predicate):
  """Matches no value."""

  _by_type = True

  def __call__(self, path: tuple, x: _Any) -> bool:
    return False


_TYPED = (OfType, Everything, Nothing, Any, All, Not)
