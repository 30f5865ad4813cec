"""Guards for unhashable values (dict, list, set) in static struct fields.

Flax accepts such values, and so does flaxen. JAX keeps the treedef, and with it the very
same object, in ``jax.jit``'s cache and compares later calls with ``==``, which short-cuts
on identity: mutating the container in place after a jit call silently reuses the stale
compiled function. A static field therefore stores a subclass of the container that warns
(:class:`flaxen.errors.StaticFieldMutationWarning`) on in-place mutation and whose
``hash`` raises :class:`flaxen.errors.UnhashableStaticFieldError` naming class and field
(``hash`` is what ``jax.jit(static_argnums=...)`` and a frozen dataclass' ``__hash__`` call).
Reads, ``==``, ``isinstance``, iteration and ``jax.tree`` functions behave as for the plain
container; copies (``.copy()``, :func:`copy.copy`, ``jax.tree.map``) are plain containers.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import jax

from flaxen import errors

_DICT_MUTATORS = ("__setitem__", "__delitem__", "__ior__", "clear", "pop", "popitem",
                  "setdefault", "update")
_LIST_MUTATORS = ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
                  "insert", "pop", "remove", "clear", "sort", "reverse")
_SET_MUTATORS = ("__ior__", "__iand__", "__isub__", "__ixor__", "add", "discard", "remove",
                 "pop", "clear", "update", "intersection_update", "difference_update",
                 "symmetric_difference_update")


class _Guarded:
  """Mixin: remembers the owning class and field; ``hash`` raises a named error."""

  _plain: type
  _owner: tuple[str, str]

  def __hash__(self):
    raise errors.UnhashableStaticFieldError(*self._owner, self)

  def __reduce__(self):
    return (_rebuild, (type(self), self._plain(self), self._owner))

  def __copy__(self):
    return self._plain(self)

  def __deepcopy__(self, memo):
    return copy.deepcopy(self._plain(self), memo)


def _rebuild(cls: type, value: Any, owner: tuple[str, str]) -> Any:
  out = cls(value)
  out._owner = owner
  return out


def _warning(base: type, name: str):
  original = getattr(base, name)

  def method(self, *args, **kwargs):
    warnings.warn(errors.StaticFieldMutationWarning(*self._owner), stacklevel=2)
    return original(self, *args, **kwargs)

  method.__name__ = name
  return method


def _guard_class(base: type, mutators: tuple[str, ...]) -> type:
  body = {name: _warning(base, name) for name in mutators}
  body.update(_plain=base, __hash__=_Guarded.__hash__)
  return type(f"Static{base.__name__.title()}", (_Guarded, base), body)


StaticDict = _guard_class(dict, _DICT_MUTATORS)
StaticList = _guard_class(list, _LIST_MUTATORS)
StaticSet = _guard_class(set, _SET_MUTATORS)
_GUARDS: dict[type, type] = {dict: StaticDict, list: StaticList, set: StaticSet}


# JAX treats a dict or list subclass as a leaf: register the guards so that a static
# value walks as the plain container does (``jax.tree.map`` over ``obj.field``), unflattening
# to the plain container.
def _flatten_dict(d: dict) -> tuple[list, tuple]:
  keys = sorted(d)
  return [(jax.tree_util.DictKey(k), d[k]) for k in keys], tuple(keys)


def _flatten_list(xs: list) -> tuple[list, None]:
  return [(jax.tree_util.SequenceKey(i), x) for i, x in enumerate(xs)], None


jax.tree_util.register_pytree_with_keys(
  StaticDict, _flatten_dict, lambda keys, values: dict(zip(keys, values, strict=True)))
jax.tree_util.register_pytree_with_keys(StaticList, _flatten_list, lambda _, values: list(values))


def guard(cls_name: str, field: str, value: Any) -> Any:
  """``value`` (unhashable) as stored in static field ``cls_name.field``.

  A plain dict, list or set becomes its guarded subclass; anything else (an array, a
  guarded container already, a user type) is kept as it is.
  """
  guard_cls = _GUARDS.get(type(value))
  if guard_cls is None:
    return value
  out = guard_cls(value)
  out._owner = (cls_name, field)
  return out
