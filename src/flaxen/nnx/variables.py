"""Variables: the mutable boxes that hold a graph's state, with their metadata.

A Variable is a reference: modules hold them, ``nnx.split`` collects them, and transforms
write new values back into the same object. Its subclass says what kind of state it is
(``Param``, ``BatchStat``...), which is what filters select on. Variables are also JAX
pytrees (the value is the child, the metadata the static part), so ``jax.tree.map`` over a
``State`` maps over the arrays and keeps the Variable types.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> w = nnx.Param(jnp.ones(2), sharding=("x",))
>>> w.value = w * 3
>>> w[...], w.sharding
(Array([3., 3.], dtype=float32), ('x',))
"""

from __future__ import annotations

import operator
from typing import Any, Generic, TypeVar

import jax
import numpy as np
from jax._src.core import trace_ctx  # private, but the public getter costs 8x more per read
from jax.core import Tracer

from flaxen.errors.nnx import (
  TraceContextError,
  VariableMetadataError,
  VariableMetadataValueError,
)
from flaxen.nnx import epoch

__all__ = [
  "Variable", "VariableState", "Param", "BatchStat", "Cache", "Intermediate", "Perturbation",
  "VariableMetadata", "with_metadata",
]

A = TypeVar("A")
_NO_VALUE: Any = object()
_HOOKS = ("on_get_value", "on_set_value", "on_create_value", "on_add_axis", "on_remove_axis")
_SHARDING_KEYS = frozenset(("sharding_names", "sharding", "out_sharding"))


class Variable(Generic[A]):
  """A mutable box holding one value (usually an array) plus metadata.

  Args:
    value: the initial value.
    **metadata: free-form metadata (e.g. ``sharding``). The hooks ``on_get_value(variable,
      value)``, ``on_set_value(variable, value)`` and ``on_create_value(variable, value)``
      may be passed here; subclasses may define them as methods instead.
  """

  on_get_value = None
  on_set_value = None
  on_create_value = None

  def __init__(self, value: A, *, hijax: bool | None = None, ref: bool | None = None,
               eager_sharding: bool | None = None, **metadata: Any):
    # flaxen has one kind of Variable: hijax / ref are accepted for Flax's signature.
    del hijax, ref
    if eager_sharding is not None:
      metadata["eager_sharding"] = eager_sharding
    if isinstance(value, VariableMetadata):  # from an initializer wrapped by with_metadata
      metadata.update(value.metadata)
      value = value.raw_value
    d = self.__dict__
    if metadata:
      _check_metadata(self, metadata)
    d["_meta"] = metadata
    d["_nnx_version"] = 0
    d["_trace"] = current_trace()
    hook = metadata.get("on_create_value") or type(self).on_create_value
    if hook is not None:
      value = _call_hook(self, hook, value)
    if metadata and not _SHARDING_KEYS.isdisjoint(metadata):  # laid out now under a mesh
      value = shard_new_value(value, metadata)
    d["_raw"] = value

  def __init_subclass__(cls, **kwargs: Any):
    super().__init_subclass__(**kwargs)
    _register(cls)

  # ------------------------------------------------------------------ value access

  @property
  def value(self) -> A:
    """The value, through the ``on_get_value`` hooks."""
    value = self._raw
    hook = self._meta.get("on_get_value") or type(self).on_get_value
    return value if hook is None else _call_hook(self, hook, value)

  @value.setter
  def value(self, value: A) -> None:
    hook = self._meta.get("on_set_value") or type(self).on_set_value
    if hook is not None:
      value = _call_hook(self, hook, value)
    if isinstance(value, Tracer):
      self._check_trace()
    self.__dict__["_raw"] = value

  def _check_trace(self) -> None:
    """A tracer may only go into a Variable made in the current trace: one made outside
    (closed over by the traced function, not passed to the transform) would keep it after
    the trace ends. Variables from a pytree unflatten record no trace and are not checked."""
    made_in = self.__dict__.get("_trace")
    if made_in is not None and made_in is not current_trace():
      raise TraceContextError(self)

  @property
  def raw_value(self) -> A:
    """The stored value, bypassing hooks."""
    return self._raw

  @raw_value.setter
  def raw_value(self, value: A) -> None:
    if isinstance(value, Tracer):
      self._check_trace()
    self.__dict__["_raw"] = value

  def get_value(self, *, index: Any = None) -> A:
    """The value through the ``on_get_value`` hooks (``value[index]`` with ``index``)."""
    value = self.value
    return value if index is None else value[index]

  def set_value(self, value: A, *, index: Any = None) -> None:
    """Sets the value through the ``on_set_value`` hooks (only ``value[index]`` with
    ``index``)."""
    if index is not None and index is not Ellipsis:
      value = self.value.at[index].set(value)
    self.value = value

  def get_raw_value(self) -> A:
    """The stored value, bypassing hooks."""
    return self._raw

  def set_raw_value(self, value: A) -> None:
    """Stores ``value`` as it is, bypassing hooks."""
    self.raw_value = value

  def create_value(self, value: A) -> A:
    """``value`` through the ``on_create_value`` hooks (what ``__init__`` stores)."""
    hook = self._meta.get("on_create_value") or type(self).on_create_value
    return value if hook is None else _call_hook(self, hook, value)

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    """Deprecated Flax spelling: ``v()`` reads the value, ``v(x)`` sets it; keywords
    (``index=``) go to ``get_value`` / ``set_value``."""
    if not args:
      return self.get_value(**kwargs)
    self.set_value(*args, **kwargs)
    return None

  @property
  def type(self) -> type[Variable]:
    return type(self)

  @property
  def var_type(self) -> type[Variable]:
    return type(self)

  @property
  def shape(self) -> Any:
    return self.value.shape

  @property
  def sharding_names(self) -> tuple | None:
    """The sharding axis names in the metadata, under any of Flax's spellings."""
    return _sharding_names(self._meta)

  hijax = False  # flaxen has one kind of Variable: no hijax or array-ref variants
  ref = False
  required_metadata: frozenset = frozenset()

  def add_axis(self, axis_index: int, axis_name: Any) -> None:
    """A transform added an axis at ``axis_index``: the sharding names get ``axis_name``
    there, and the ``on_add_axis`` hooks run."""
    self._move_axis(axis_index, axis_name, add=True)

  def remove_axis(self, axis_index: int, axis_name: Any) -> None:
    """A transform removed the axis at ``axis_index`` (see ``add_axis``)."""
    self._move_axis(axis_index, axis_name, add=False)

  def _move_axis(self, axis_index: int, axis_name: Any, add: bool) -> None:
    meta = self._meta
    for key in ("out_sharding", "sharding", "sharding_names"):
      names = meta.get(key)
      if isinstance(names, tuple | list):
        names = tuple(names)
        if add:
          at = axis_index if axis_index >= 0 else len(names) + axis_index + 1
          names = (*names[:at], axis_name, *names[at:])
        else:
          at = axis_index if axis_index >= 0 else len(names) + axis_index
          names = names[:at] + names[at + 1:]
        self.set_metadata(key, names)
        break
    hook = meta.get("on_add_axis" if add else "on_remove_axis") or getattr(
      type(self), "on_add_axis" if add else "on_remove_axis", None)
    for h in (hook if isinstance(hook, tuple | list) else (hook,)) if hook else ():
      h(axis_index, axis_name) if getattr(h, "__self__", None) is self else h(
        self, axis_index, axis_name)

  # --------------------------------------------------------------------- metadata

  def get_metadata(self, name: Any = None, default: Any = None, *,
                   exclude_required: bool | None = None) -> Any:
    """A copy of the metadata dict, or the entry ``name`` (``default`` if absent)."""
    del exclude_required  # no metadata is required in flaxen
    return dict(self._meta) if name is None else self._meta.get(name, default)

  def has_metadata(self, name: str) -> bool:
    return name in self._meta

  def del_metadata(self, name: str) -> None:
    """Removes the metadata entry ``name`` (a structural change)."""
    meta = dict(self._meta)
    del meta[name]
    self.__dict__["_meta"] = meta
    self._bump()

  def set_metadata(self, *args: Any, **kwargs: Any) -> None:
    """``set_metadata(name, value)``, ``set_metadata(mapping)`` or ``set_metadata(**kw)``."""
    if len(args) == 2:
      kwargs[args[0]] = args[1]
    elif len(args) == 1:
      kwargs.update(args[0])
    _check_metadata(self, kwargs)
    self.__dict__["_meta"] = {**self._meta, **kwargs}
    self._bump()

  def _bump(self) -> None:
    d = self.__dict__
    d["_nnx_version"] += 1
    if "_nnx_tracked" in d:
      epoch.bump()

  def __getattr__(self, name: str) -> Any:
    if name.startswith("__") or name in ("_meta", "_raw"):
      raise AttributeError(name)
    meta = self.__dict__["_meta"]
    if name in meta:
      return meta[name]
    if name == "out_sharding" and (names := _sharding_names(meta)) is not None:
      return names  # Flax 0.12's name for the axis names, whatever key holds them
    try:
      return getattr(self.__dict__["_raw"], name)
    except AttributeError:
      raise VariableMetadataError(self, name, meta) from None

  def __setattr__(self, name: str, value: Any) -> None:
    if name in ("value", "raw_value"):
      object.__setattr__(self, name, value)
    else:
      self.set_metadata(name, value)

  # ------------------------------------------------------------------------ copies

  @classmethod
  def _from_raw(cls, value: Any, meta: dict[str, Any]) -> Variable:
    """A Variable of this class with ``value`` stored as is (no create hooks)."""
    var = object.__new__(cls)
    var.__dict__.update(_raw=value, _meta=meta, _nnx_version=0, _trace=current_trace())
    return var

  def copy(self, value: Any = _NO_VALUE, **updates: Any) -> Variable[A]:
    """A new Variable with the same value and metadata (or ``value`` and the metadata
    ``updates``)."""
    d = self.__dict__
    var = object.__new__(type(self))
    meta = dict(d["_meta"])
    if updates:
      _check_metadata(self, updates)
      meta.update(updates)
    var.__dict__.update(_raw=d["_raw"] if value is _NO_VALUE else value, _meta=meta,
                        _nnx_version=0, _trace=current_trace())
    return var

  @classmethod
  def from_metadata(cls, value: Any, attributes: dict[str, Any]) -> Variable:
    """A Variable of this class holding ``value`` with the metadata ``attributes``."""
    return cls._from_raw(value, dict(attributes))

  def copy_from(self, other: Variable) -> None:
    """Takes ``other``'s value and metadata, in place."""
    self.raw_value = other._raw
    if other._meta != self._meta:
      self.__dict__["_meta"] = dict(other._meta)
      self._bump()

  def update_from_state(self, variable_state: Variable) -> None:
    """``copy_from``: older Flax name."""
    self.copy_from(variable_state)

  def replace(self, value: Any = None, **metadata: Any) -> Variable:
    """A copy with a new value and/or updated metadata."""
    _check_metadata(self, metadata)
    return self._from_raw(self._raw if value is None else value, {**self._meta, **metadata})

  def to_state(self, value: Any = _NO_VALUE, **updates: Any) -> Variable[A]:
    return self.copy(value, **updates)

  def to_variable(self) -> Variable[A]:
    return self.copy()

  def __getstate__(self) -> dict[str, Any]:  # the trace weakref cannot be pickled
    return {k: v for k, v in self.__dict__.items() if k != "_trace"}

  # ------------------------------------------------------------- array behaviour

  def __jax_array__(self):
    return self.value

  def __array__(self, dtype=None, copy=None):
    return np.asarray(self.value, dtype=dtype)

  def __getitem__(self, index: Any) -> Any:
    value = self.value
    if index is Ellipsis and not hasattr(value, "__getitem__"):  # v[...] of a scalar
      return value
    return value[index]

  def __setitem__(self, index: Any, value: Any) -> None:
    if index is Ellipsis:
      self.value = value
    else:
      self.value = self.value.at[index].set(value)

  def __len__(self) -> int:
    return len(self.value)

  def __iter__(self):
    return iter(self.value)

  def __bool__(self) -> bool:
    return bool(self.value)

  def __eq__(self, other: object) -> Any:
    # Two Variables are equal only if they are the same box (States and lists of
    # Variables compare by identity); against a plain value the value is compared, as in
    # Flax (``assert model.count == 1``).
    if isinstance(other, Variable):
      return self is other
    return self.value == other

  def __ne__(self, other: object) -> Any:
    if isinstance(other, Variable):
      return self is not other
    return self.value != other

  __hash__ = object.__hash__

  def __repr__(self) -> str:
    extra = "".join(f", {k}={v!r}" for k, v in self._meta.items())
    return f"{type(self).__name__}(value={_value_repr(self._raw)}{extra})"


VariableState = Variable  # older Flax name of the detached copies that live in a State


class VariableMetadata(Generic[A]):
  """An initializer's result plus metadata (and hooks) for the Variable that will hold it."""

  def __init__(self, raw_value: A, on_set_value: Any = (), on_get_value: Any = (),
               on_create_value: Any = (), on_add_axis: Any = (), on_remove_axis: Any = (),
               metadata: dict[str, Any] | None = None):
    if isinstance(on_set_value, dict) and metadata is None:  # (raw_value, metadata) calls
      on_set_value, metadata = None, on_set_value
    hooks = {"on_set_value": on_set_value, "on_get_value": on_get_value,
             "on_create_value": on_create_value, "on_add_axis": on_add_axis,
             "on_remove_axis": on_remove_axis}
    self.raw_value = raw_value
    self.metadata = {**(metadata or {}), **{k: h for k, h in hooks.items() if h}}  # () = none


def with_metadata(initializer: Any, on_set_value: Any = (), on_get_value: Any = (),
                  on_create_value: Any = (), on_add_axis: Any = (), on_remove_axis: Any = (),
                  **metadata: Any):
  """Wrap ``initializer`` so that a Variable built from its result gets ``metadata``.

  Args:
    initializer: the function to wrap.
    on_set_value, on_get_value, on_create_value, on_add_axis, on_remove_axis: Variable
      hooks (a callable or a tuple of them) stored with the metadata; ``()`` adds none.
    **metadata: the rest of the metadata (e.g. ``sharding_names``).
  """
  hooks = dict(on_set_value=on_set_value, on_get_value=on_get_value,
               on_create_value=on_create_value, on_add_axis=on_add_axis,
               on_remove_axis=on_remove_axis)
  metadata = {**{k: h for k, h in hooks.items() if h != ()}, **metadata}

  def init(*args: Any, **kwargs: Any) -> VariableMetadata:
    return VariableMetadata(initializer(*args, **kwargs), dict(metadata))

  return init


def current_trace() -> Any:
  """A weak reference to the innermost JAX trace (the eval trace outside any transform),
  the same object for the whole trace, so Variables compare it with ``is``."""
  return trace_ctx.trace._weakref


def _check_metadata(var: Variable, metadata: dict[str, Any]) -> None:
  """Metadata is static (hashed into the GraphDef, by identity when unhashable): arrays and
  Variables belong in values. Tracers are left to the transforms' leak check, which names
  the path."""
  for key, value in metadata.items():
    if isinstance(value, jax.Array | np.ndarray | Variable) and not isinstance(value, Tracer):
      raise VariableMetadataValueError(var, key, value)


def _value_repr(value: Any) -> str:
  """One line and cheap: arrays that are big, 2-D or more, or PRNG keys by shape and dtype."""
  if isinstance(value, jax.Array | np.ndarray) and (
    value.size > 8 or value.ndim > 1 or jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key)
  ):
    return f"Array(shape={value.shape}, dtype={value.dtype})"
  return repr(value)


def _call_hook(var: Variable, hook: Any, value: Any) -> Any:
  hooks = hook if isinstance(hook, tuple | list) else (hook,)
  for h in hooks:
    value = h(value) if getattr(h, "__self__", None) is var else h(var, value)
  return value


def _binary(op):
  return lambda self, other: op(self.value, other)


def _reflected(op):
  return lambda self, other: op(other, self.value)


def _inplace(op):
  def method(self, other):
    self.value = op(self.value, other)
    return self
  return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
              "xor", "lshift", "rshift"):
  _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
  setattr(Variable, f"__{_name}__", _binary(_op))
  setattr(Variable, f"__r{_name}__", _reflected(_op))
  setattr(Variable, f"__i{_name}__", _inplace(_op))
for _name in ("lt", "le", "gt", "ge"):
  setattr(Variable, f"__{_name}__", _binary(getattr(operator, _name)))
def _unary(op):
  return lambda self: op(self.value)


# Operators act on the value, so a Variable can stand in for its array in expressions.
for _name in ("neg", "pos", "abs", "invert"):
  setattr(Variable, f"__{_name}__", _unary(getattr(operator, _name)))


_VALUE_KEY = jax.tree_util.GetAttrKey("value")


def _flatten_with_keys(v: Variable):
  d = v.__dict__
  meta = d["_meta"]
  return ((_VALUE_KEY, d["_raw"]),), tuple(meta.items()) if meta else ()


def _flatten(v: Variable):
  d = v.__dict__
  meta = d["_meta"]
  return (d["_raw"],), tuple(meta.items()) if meta else ()


def _register(cls: type) -> None:
  new = object.__new__

  def unflatten(aux: tuple, children: Any) -> Variable:  # cls._from_raw, inlined
    var = new(cls)
    d = var.__dict__
    d["_raw"] = children[0]  # one store each: faster than a tuple assignment or update()
    d["_meta"] = dict(aux) if aux else {}
    d["_nnx_version"] = 0
    return var

  jax.tree_util.register_pytree_with_keys(cls, _flatten_with_keys, unflatten, _flatten)


_register(Variable)


class Param(Variable[A]):
  """A trainable parameter: what ``nnx.grad`` and ``nnx.Optimizer`` act on by default."""


class BatchStat(Variable[A]):
  """Running statistics (e.g. of BatchNorm): state, but not trained by gradients."""


class Cache(Variable[A]):
  """Decoding caches and similar state that lives across calls."""


class Intermediate(Variable[A]):
  """Values stored by ``Module.sow`` for inspection."""


class Perturbation(Intermediate[A]):
  """Zeros added by ``Module.perturb`` so the gradient w.r.t. an intermediate can be taken."""


# Last: nnx.spmd needs Variable from this module.
from flaxen.nnx.spmd import shard_new_value  # noqa: E402
from flaxen.nnx.spmd import sharding_names as _sharding_names  # noqa: E402
