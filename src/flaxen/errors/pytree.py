"""Errors of struct dataclasses and serialization."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from flaxen.errors.base import FlaxenError, names, short_repr

__all__ = [
  "FrozenStructError", "UnknownFieldError", "UnhashableStaticFieldError",
  "StaticArrayFieldError", "StaticFieldMutationWarning", "StructSlotsError",
  "StateMismatchError", "SerializationError", "SerializationHandlerExistsError",
]


# --------------------------------------------------------------------------- struct


class FrozenStructError(FlaxenError, dataclasses.FrozenInstanceError):
  """An attribute of a frozen struct dataclass was assigned or deleted.

  Struct dataclasses are immutable so that JAX can treat them as values. Use
  ``obj.replace(field=value)``, which returns an updated copy.
  """

  def __init__(self, cls_name: str, field: str, action: str = "assign to"):
    super().__init__(
      f"Cannot {action} field {field!r} of {cls_name}: struct dataclasses are immutable. "
      f"Fix: make an updated copy with `obj = obj.replace({field}=...)`."
    )


class UnknownFieldError(FlaxenError, TypeError, ValueError):
  """``replace`` was given a name that is not a constructor field of the class.

  Plain :func:`dataclasses.replace` raises ``TypeError`` for an unknown name and
  ``ValueError`` for an ``init=False`` field; this error is both.
  """

  def __init__(self, cls_name: str, unknown: Iterable[str], fields: Iterable[str]):
    super().__init__(
      f"{cls_name}.replace() got unknown field(s) {names(unknown)}. "
      f"{cls_name} has the fields {names(fields)}. Fix: spell the field as declared; "
      "fields declared with init=False are computed in __post_init__ and cannot be replaced."
    )


class UnhashableStaticFieldError(FlaxenError, TypeError):
  """A static field (``pytree_node=False``) holding an unhashable value was hashed.

  Building a struct with a list or dict in a static field is allowed (as in Flax), but
  hashing it fails: ``hash(obj)``, or ``jax.jit(..., static_argnums=...)`` with the struct
  as a static argument.
  """

  def __init__(self, cls_name: str, field: str, value: object):
    super().__init__(
      f"Static field {cls_name}.{field} holds an unhashable {_kind(value)}: "
      f"{short_repr(value)}, so the {cls_name} cannot be hashed (as a jax.jit static "
      "argument or cache key). Fix: store a tuple, frozenset or FrozenDict instead, or "
      "declare the field as data with struct.field(pytree_node=True)."
    )


def _kind(value: object) -> str:
  """The type name of ``value``; a guarded static container shows as its plain type."""
  return getattr(type(value), "_plain", type(value)).__name__


class StaticArrayFieldError(UnhashableStaticFieldError):
  """A static field holds a JAX or NumPy array, which JAX would never trace."""

  def __init__(self, cls_name: str, field: str, value: object):
    shape = getattr(value, "shape", "?")
    dtype = getattr(value, "dtype", "?")
    FlaxenError.__init__(
      self,
      f"Static field {cls_name}.{field} holds an array ({type(value).__name__} of shape "
      f"{shape}, dtype {dtype}). Arrays in static fields are not traced by JAX "
      "transforms and cannot be part of a jit cache key. Fix: declare the field as data "
      "(drop pytree_node=False), or store a hashable Python value such as a tuple.",
    )


class StaticFieldMutationWarning(FlaxenError, UserWarning):
  """A dict, list or set in a static field was mutated in place.

  Static fields are part of the tree structure that ``jax.jit`` keeps in its cache; JAX
  finds the same object there on the next call and reuses the compiled function, which
  still sees the old contents. A warning, not an error: Flax programs may do this.
  """

  def __init__(self, cls_name: str, field: str):
    super().__init__(
      f"The static field {cls_name}.{field} was mutated in place. Static fields are part of "
      "jax.jit's cache key, and a jitted function already called with this object will "
      "not see the change (it reuses the stale compilation). Fix: build a new value and "
      f"use obj.replace({field}=new_value), or store an immutable tuple / FrozenDict."
    )


class StructSlotsError(FlaxenError, TypeError):
  """``slots=True`` was passed to a ``PyTreeNode`` subclass.

  A slotted dataclass is a new class object, and a base class cannot replace the class
  being defined with another one.
  """

  def __init__(self, cls_name: str):
    super().__init__(
      f"class {cls_name}(PyTreeNode, slots=True) is not supported: dataclasses builds a "
      "new class for slots, which PyTreeNode cannot substitute for the one being defined. "
      f"Fix: decorate a plain class instead, `@struct.dataclass(slots=True) class {cls_name}`."
    )


# ------------------------------------------------------------------- serialization


class SerializationError(FlaxenError, ValueError):
  """Bytes could not be decoded as flaxen msgpack state, or a value cannot be encoded."""

  def __init__(self, message: str):
    if "Fix:" not in message:  # the decoder's many checks all mean damaged or foreign bytes
      message += (" Fix: restore bytes written by flaxen.serialization.to_bytes (or Flax's) "
                  "from an intact copy, or save the state again.")
    super().__init__(message)


class StateMismatchError(SerializationError):
  """A restored state does not have the structure of the target it is restored into.

  A kind of :class:`SerializationError`, so one ``except`` clause covers every way that
  restoring bytes can fail. ``path`` is the '/'-joined path of the first mismatch.
  """

  def __init__(self, path: str, expected: str, found: str):
    self.path = path
    super().__init__(
      f"State does not match the target at {path or '<root>'}: expected {expected}, "
      f"found {found}. Fix: restore into a target built the same way as the one that was "
      "saved (same model configuration), or migrate the saved state first."
    )


class SerializationHandlerExistsError(FlaxenError, ValueError):
  """``register_serialization_state`` was called twice for one type without ``override``."""

  def __init__(self, ty: type):
    name = f"{ty.__module__}.{ty.__qualname__}"
    super().__init__(
      f"A serialization handler for {name} is already registered, and registering another "
      "one would silently change how saved states of that type are read. Fix: pass "
      "override=True to replace it on purpose, or register the type once (e.g. at import "
      "of the module that defines it)."
    )
