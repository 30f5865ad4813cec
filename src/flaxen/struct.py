"""Immutable dataclasses that are JAX pytrees.

A struct dataclass is a frozen :mod:`dataclasses` class registered with
``jax.tree_util.register_dataclass``, so flattening and unflattening run in JAX's C++
registry. Fields are data (leaves JAX transforms trace) unless declared static with
``field(pytree_node=False)`` or JAX's own ``metadata=dict(static=True)``; static fields
are part of the tree structure and so of jit's cache key.

>>> import jax, jax.numpy as jnp
>>> from flaxen import struct
>>> class Affine(struct.PyTreeNode):
...   w: jax.Array
...   b: jax.Array
...   act: str = struct.field(pytree_node=False, default="relu")
>>> a = Affine(jnp.ones(2), jnp.zeros(2))
>>> [str(k[0]) for k, _ in jax.tree_util.tree_flatten_with_path(a)[0]]
['.w', '.b']
>>> a.replace(act="tanh").act
'tanh'
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, TypeVar

import jax
import numpy as np
from typing_extensions import dataclass_transform

from flaxen import errors, serialization, struct_static

_T = TypeVar("_T")

# Marks a class that this module turned into a struct dataclass (set on the class itself,
# so a subclass that is not decorated again is not taken for one).
_STRUCT_MARK = "_flaxen_dataclass"
# Flax's spelling of the same marker, which some user code inspects.
_FLAX_MARK = "_flax_dataclass"


def field(pytree_node: bool = True, *, metadata: dict | None = None, **kwargs) -> Any:
  """A dataclass field that says whether JAX transforms treat it as data.

  Args:
    pytree_node: ``True`` (default) makes a data field, a subtree that JAX transforms
      trace; ``False`` makes a static field, kept in the tree structure (so in jit's
      cache key), which should be hashable and never mutated in place.
    metadata: extra field metadata, kept as given.
    **kwargs: passed on to :func:`dataclasses.field` (``default``, ``default_factory``,
      ``init``, ``repr``, ``kw_only``, ...).

  Returns:
    A :class:`dataclasses.Field` for a struct dataclass.
  """
  return dataclasses.field(metadata={"pytree_node": pytree_node, **(metadata or {})}, **kwargs)


def _is_static(f: dataclasses.Field) -> bool:
  return not f.metadata.get("pytree_node", True) or bool(f.metadata.get("static", False))


@dataclass_transform(field_specifiers=(field,), frozen_default=True)  # type: ignore[literal-required]
def dataclass(clz: type[_T] | None = None, **kwargs) -> Any:
  """Turn ``clz`` into a frozen dataclass registered as a JAX pytree.

  Args:
    clz: the class to transform. When omitted, returns a decorator taking the class, so
      ``@dataclass(kw_only=True)`` works.
    **kwargs: passed on to :func:`dataclasses.dataclass`; ``frozen`` defaults to True.

  Returns:
    The new class, with a ``replace(**updates)`` method.

  Raises:
    flaxen.errors.UnhashableStaticFieldError: from ``hash(instance)`` (what
      ``jax.jit(static_argnums=...)`` calls) when a static field holds an unhashable value
      (a list, a dict); :class:`flaxen.errors.StaticArrayFieldError` for an array there.
      Building such an instance is fine, as in Flax.
  """
  if clz is None:
    return functools.partial(dataclass, **kwargs)
  if _STRUCT_MARK in clz.__dict__:
    return clz
  kwargs.setdefault("frozen", True)
  _unshadow_redeclared_static_fields(clz)
  own_hash = "__hash__" in clz.__dict__
  data_clz: Any = dataclasses.dataclass(clz, **kwargs)  # type: ignore[call-overload]

  init_fields = [f for f in dataclasses.fields(data_clz) if f.init]
  static = [f for f in init_fields if _is_static(f)]
  meta_fields = tuple(f.name for f in static)
  data_fields = tuple(f.name for f in init_fields if not _is_static(f))
  slotted = "__slots__" in data_clz.__dict__
  for f in static:
    if slotted:
      setattr(data_clz, f.name, _SlotStaticField(f.name, f.default, _slot(data_clz, f.name)))
    else:
      setattr(data_clz, f.name, _StaticField(f.name, f.default))
  for f in dataclasses.fields(data_clz):
    inherited = getattr(data_clz, f.name, None)
    if not _is_static(f) and isinstance(inherited, _StaticField):
      # a base's static field declared again as data: its hash check must not apply here
      if isinstance(inherited, _SlotStaticField) and slotted:
        setattr(data_clz, f.name, inherited.slot)
      else:
        setattr(data_clz, f.name, _DataField(f.name, f.default))
  generated_hash = data_clz.__dict__.get("__hash__")
  if not own_hash and generated_hash is not None:
    data_clz.__hash__ = _named_hash(generated_hash, meta_fields)
  if kwargs["frozen"]:
    data_clz.__setattr__ = _frozen_setattr
    data_clz.__delattr__ = _frozen_delattr
  data_clz.replace = _replace
  setattr(data_clz, _STRUCT_MARK, True)
  setattr(data_clz, _FLAX_MARK, True)
  jax.tree_util.register_dataclass(data_clz, data_fields, meta_fields)
  serialization.register_serialization_state(
    data_clz,
    functools.partial(_to_state_dict, fields=data_fields),
    functools.partial(_from_state_dict, fields=data_fields),
    override=True,
  )
  return data_clz


def _slot(clz: type, name: str) -> Any:
  """The slot descriptor holding field ``name`` (a base class's, if it declared the slot)."""
  attr = next(k.__dict__[name] for k in clz.__mro__ if name in k.__dict__)
  return attr.slot if isinstance(attr, _SlotStaticField) else attr


def _replace(self, **updates):
  """Return a copy of this instance with the given fields replaced."""
  try:
    return dataclasses.replace(self, **updates)
  except (TypeError, ValueError):  # names are checked only on failure: replace is hot
    fields = {f.name for f in dataclasses.fields(self) if f.init}
    unknown = [k for k in updates if k not in fields]
    if unknown:
      raise errors.UnknownFieldError(type(self).__name__, unknown, sorted(fields)) from None
    raise


def _named_hash(generated, static: tuple[str, ...]):
  """Wrap a dataclass-generated ``__hash__`` so that an unhashable static field is named."""

  def __hash__(self):
    try:
      return generated(self)
    except errors.UnhashableStaticFieldError:
      raise
    except TypeError:
      for name in static:
        value = getattr(self, name)
        try:
          hash(value)
        except TypeError:
          cls_name = type(self).__name__
          if isinstance(value, np.ndarray | jax.Array):
            raise errors.StaticArrayFieldError(cls_name, name, value) from None
          raise errors.UnhashableStaticFieldError(cls_name, name, value) from None
      raise

  return __hash__


def _frozen_setattr(self, name: str, value: Any) -> None:
  raise errors.FrozenStructError(type(self).__name__, name)


def _frozen_delattr(self, name: str) -> None:
  raise errors.FrozenStructError(type(self).__name__, name, action="delete")


class _StaticField:
  """The class attribute behind a static field: guards each value where it is stored.

  JAX unflattens by calling the class, so whatever ``__init__`` runs, runs on every
  unflatten. Dataclass ``__init__`` stores fields with ``object.__setattr__``, which calls
  this ``__set__``: one hash per static field, no wrapper around ``__init__``; an
  unhashable dict, list or set is stored as its guarded subclass
  (:mod:`flaxen.struct_static`), which warns on in-place mutation. With no
  ``__get__``, reads still find the value in the instance ``__dict__`` at full speed
  (JAX's flatten reads every field); on the class itself the name reads as this object,
  so field defaults are found with :func:`dataclasses.fields`. A ``slots=True`` class
  gets :class:`_SlotStaticField` instead.
  """

  __slots__ = ("name", "default")

  def __init__(self, name: str, default: Any):
    self.name = name
    self.default = default  # the field's default, or dataclasses.MISSING

  def __set__(self, obj: Any, value: Any) -> None:
    try:
      hash(value)
    except TypeError:
      value = struct_static.guard(type(obj).__name__, self.name, value)
    obj.__dict__[self.name] = value

  def __repr__(self) -> str:
    return f"<static field {self.name!r}>"


class _DataField(_StaticField):
  """Shadows the :class:`_StaticField` of a base class whose static field a subclass
  declares again as data: stores any value, as a plain dataclass field would."""

  __slots__ = ()

  def __set__(self, obj: Any, value: Any) -> None:
    obj.__dict__[self.name] = value

  def __repr__(self) -> str:
    return f"<data field {self.name!r}>"


class _SlotStaticField(_StaticField):
  """A static field of a ``slots=True`` class: the value lives in the slot it replaces."""

  __slots__ = ("slot",)

  def __init__(self, name: str, default: Any, slot: Any):
    super().__init__(name, default)
    self.slot = slot

  def __get__(self, obj: Any, objtype: type | None = None) -> Any:
    return self if obj is None else self.slot.__get__(obj, objtype)

  def __set__(self, obj: Any, value: Any) -> None:
    try:
      hash(value)
    except TypeError:
      value = struct_static.guard(type(obj).__name__, self.name, value)
    self.slot.__set__(obj, value)


def _unshadow_redeclared_static_fields(clz: type) -> None:
  """Let a subclass that annotates an inherited static field again see what plain
  dataclasses would: the parent's default as class attribute, not its ``_StaticField``."""
  for name in inspect.get_annotations(clz):
    inherited = getattr(clz, name, None)
    if name not in clz.__dict__ and isinstance(inherited, _StaticField):
      missing = inherited.default is dataclasses.MISSING
      setattr(clz, name, dataclasses.field() if missing else inherited.default)


def _to_state_dict(x, *, fields: tuple[str, ...]) -> dict[str, Any]:
  return {name: serialization.to_state_dict(getattr(x, name)) for name in fields}


def _from_state_dict(x, state: dict[str, Any], *, fields: tuple[str, ...]):
  serialization.check_keys(state, fields, type(x).__name__)
  updates = {
    name: serialization.from_state_dict(getattr(x, name), state[name], name=name)
    for name in fields
  }
  return x.replace(**updates)


@dataclass_transform(field_specifiers=(field,), frozen_default=True)  # type: ignore[literal-required]
class PyTreeNode:
  """Base class whose subclasses are struct dataclasses.

  Class keyword arguments go to :func:`dataclass`, e.g.
  ``class Config(PyTreeNode, kw_only=True)``. Subclasses may add fields.

  >>> import jax
  >>> from flaxen import struct
  >>> class Model(struct.PyTreeNode):
  ...   params: dict
  ...   apply_fn: object = struct.field(pytree_node=False)
  >>> m = Model({"w": 1.0}, apply_fn=print)
  >>> jax.tree.leaves(m)
  [1.0]
  """

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__()  # lets Generic and other bases set up the class first
    if kwargs.get("slots"):  # dataclasses would make a new class, which a base cannot return
      raise errors.StructSlotsError(cls.__name__)
    dataclass(cls, **kwargs)

  def __init__(self, *args: Any, **kwargs: Any) -> None:
    # Flax's signature. Each subclass gets its dataclass ``__init__``; this one is reached
    # only by PyTreeNode itself or an ``init=False`` subclass, which take no arguments.
    super().__init__(*args, **kwargs)

  def replace(self, **updates):  # replaced per class by ``dataclass``; here for type checkers
    """Return a copy of this instance with the given fields replaced."""
    return _replace(self, **updates)
