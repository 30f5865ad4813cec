"""Marking an Object's attributes as data (pytree leaves, graph state) or static.

By default an attribute is data when its value holds arrays, Variables or graph objects,
and static otherwise. ``nnx.data(value)`` / ``nnx.static(value)`` fix the kind of one
attribute of one object for this and later assignments; ``nnx.data()`` / ``nnx.static()``
(no value) are dataclass field specifiers, and ``nnx.Data[T]`` / ``nnx.Static[T]``
annotations, that do the same for a field of every instance. The kinds live in the
object's ``_nnx_kinds`` dict (name -> True for data), an ordinary static attribute, so they
survive ``split``/``merge`` and ``jax.tree`` round trips.

>>> import jax
>>> from flaxen import nnx
>>> class Foo(nnx.Pytree):
...   def __init__(self):
...     self.count = nnx.data(0)     # an int, but a leaf
...     self.name = nnx.static('a')
>>> jax.tree.leaves(Foo())
[0]
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, TypeVar

import jax
import numpy as np

from flaxen.errors.nnx_tree import StaticDataError
from flaxen.nnx.variables import Variable

__all__ = ["data", "static", "Data", "Static", "dataclass", "register_data_type", "is_data",
           "has_data", "check_pytree", "Marked", "class_kinds", "DATA_TYPES"]

A = TypeVar("A")
_KIND = "nnx_kind"  # dataclass field metadata key: True (data) or False (static)
_MISSING: Any = object()

# Types whose instances are data; graph objects (``Object``) are added by object.py.
DATA_TYPES: list[type] = [jax.Array, np.ndarray, Variable]


class _Annotation:
  """The marker inside ``Data[T]`` / ``Static[T]``."""

  __slots__ = ("is_data",)

  def __init__(self, is_data: bool):
    self.is_data = is_data

  def __repr__(self) -> str:
    return "data" if self.is_data else "static"


_DATA, _STATIC = _Annotation(True), _Annotation(False)
Data = Annotated[A, _DATA]
Static = Annotated[A, _STATIC]


class Marked:
  """A value wrapped by ``nnx.data`` / ``nnx.static``, unwrapped on assignment."""

  __slots__ = ("value", "is_data")

  def __init__(self, value: Any, is_data: bool):
    self.value, self.is_data = value, is_data


def data(value: Any = _MISSING, /, **kwargs: Any) -> Any:
  """Marks an attribute as data: a pytree leaf (or subtree) and graph state, whatever its
  value. Without a value: a dataclass field specifier (``kwargs`` go to
  ``dataclasses.field``)."""
  if value is _MISSING:
    return _field(True, kwargs)
  return Marked(value, True)


def static(value: Any = _MISSING, /, **kwargs: Any) -> Any:
  """Marks an attribute as static (part of the GraphDef / pytree structure).

  Raises:
    StaticDataError: ``value`` holds arrays, Variables or graph objects.
  """
  if value is _MISSING:
    return _field(False, kwargs)
  if has_data(value):
    raise StaticDataError(value, None, field=False)
  return Marked(value, False)


def _field(is_data: bool, kwargs: dict) -> Any:
  metadata = {**kwargs.pop("metadata", {}), _KIND: is_data}
  return dataclasses.field(metadata=metadata, **kwargs)


@typing.dataclass_transform(field_specifiers=(data, static, dataclasses.field))
def dataclass(cls: Any = None, /, *, init: bool = True, eq: bool = True, order: bool = False,
              unsafe_hash: bool = False, match_args: bool = True, kw_only: bool = False,
              slots: bool = False, weakref_slot: bool = False) -> Any:
  """``dataclasses.dataclass`` for Objects, whose fields may use ``nnx.data()`` /
  ``nnx.static()`` as specifiers. ``eq`` defaults as in dataclasses but Objects keep
  identity hashing."""
  def wrap(c: Any) -> Any:
    out = dataclasses.dataclass(c, init=init, eq=eq, order=order, unsafe_hash=unsafe_hash,
                                match_args=match_args, kw_only=kw_only, slots=slots,
                                weakref_slot=weakref_slot)
    if eq and not unsafe_hash and out.__hash__ is None:
      out.__hash__ = object.__hash__  # graph nodes are keyed by identity
    return out
  return wrap if cls is None else wrap(cls)


def register_data_type(type_: type, /) -> type:
  """Makes instances of ``type_`` data wherever they appear as attribute values; returns
  the type, so it works as a class decorator."""
  if type_ not in DATA_TYPES:
    DATA_TYPES.append(type_)
  return type_


def is_data(value: Any, /) -> bool:
  """Whether ``value`` is of a data type (arrays, Variables, graph objects and the types
  given to ``register_data_type``)."""
  return isinstance(value, tuple(DATA_TYPES))


def has_data(value: Any, /) -> bool:
  """Whether ``value`` is data or a pytree holding data."""
  return any(is_data(x) for x in jax.tree.leaves(value, is_leaf=is_data))


def check_pytree(pytree: Any) -> None:
  """Checks that no Object in ``pytree`` holds data in an attribute marked static.

  Raises:
    StaticDataError: naming the attribute and the value's type.
  """
  from flaxen.nnx.graphlib import iter_graph  # graphlib imports this module's users

  for _, node in iter_graph(pytree):
    kinds = getattr(node, "__dict__", {}).get("_nnx_kinds")
    for name, is_d in (kinds or {}).items():
      value = node.__dict__.get(name)
      if not is_d and has_data(value):
        raise StaticDataError(value, name, field=False)


def class_kinds(cls: type) -> dict[str, bool]:
  """The kinds that ``cls`` (and its bases) fix for its fields, from ``nnx.data()`` /
  ``nnx.static()`` field specifiers and ``Data[...]`` / ``Static[...]`` annotations."""
  kinds: dict[str, bool] = {}
  for klass in reversed(cls.__mro__):
    for name, ann in klass.__dict__.get("__annotations__", {}).items():
      for meta in getattr(ann, "__metadata__", ()):
        if isinstance(meta, _Annotation):
          kinds[name] = meta.is_data
    for name, value in klass.__dict__.items():
      if isinstance(value, dataclasses.Field) and _KIND in value.metadata:
        kinds[name] = value.metadata[_KIND]
    for f in klass.__dict__.get("__dataclass_fields__", {}).values():
      if _KIND in f.metadata:
        kinds[f.name] = f.metadata[_KIND]
  return kinds
