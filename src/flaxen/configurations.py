"""Process-wide flags, with Flax's names: ``flaxen.config`` is the one config of the library.

Each flag has a default, may be set from the environment (its name in upper case, e.g.
``NNX_GRAPH_MODE=0``) before flaxen is imported, and can be changed at run time with
``flaxen.config.update(name, value)`` or temporarily with ``temp_flip_flag``. Modules read
the flag where they need it (``config.nnx_graph_mode``); none keeps a private copy.

>>> from flaxen import config
>>> config.flax_return_frozendict
False
>>> config.update("flax_return_frozendict", True)
>>> config.flax_return_frozendict
True
>>> config.update("flax_return_frozendict", False)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from flaxen.errors import ConfigFlagError

_T = TypeVar("_T")

_TRUE = ("y", "yes", "t", "true", "on", "1")
_FALSE = ("n", "no", "f", "false", "off", "0")


class Config:
  """Holds every flag's current value; each flag is also a read-only property."""

  def __init__(self) -> None:
    self._values: dict[str, Any] = {}
    self._kinds: dict[str, type] = {}

  def _add_option(self, name: str, default: Any, kind: type) -> None:
    if name in self._values:
      raise ConfigFlagError(name, "defined twice", "give the new flag another name")
    self._values[name] = default
    self._kinds[name] = kind

  def _read(self, name: str) -> Any:
    try:
      return self._values[name]
    except KeyError:
      raise ConfigFlagError(name, f"there is no flag {name!r}", _known(self._values)) from None

  def update(self, name_or_holder: str | FlagHolder, value: Any, /) -> None:
    """Sets a flag: ``config.update("nnx_graph_mode", False)`` or by its ``FlagHolder``."""
    name = name_or_holder.name if isinstance(name_or_holder, FlagHolder) else name_or_holder
    if name not in self._values:
      raise ConfigFlagError(name, f"there is no flag {name!r}", _known(self._values))
    kind = self._kinds[name]
    if kind is bool and not isinstance(value, bool | int):
      raise ConfigFlagError(name, f"expected a bool, got {value!r}", "pass True or False")
    if kind is int and value is not None and not isinstance(value, int):
      raise ConfigFlagError(name, f"expected an int or None, got {value!r}", "pass an int")
    self._values[name] = bool(value) if kind is bool else value

  @contextlib.contextmanager
  def temp_flip_flag(self, var_name: str, var_value: bool) -> Iterator[None]:
    """Sets ``flax_<var_name>`` for the duration of a ``with`` block, then restores it."""
    name = f"flax_{var_name}"
    old = self._read(name)
    self.update(name, var_value)
    try:
      yield
    finally:
      self.update(name, old)

  def __repr__(self) -> str:
    return f"Config({', '.join(f'{k}={v!r}' for k, v in sorted(self._values.items()))})"


def _known(values: dict[str, Any]) -> str:
  return "use one of: " + ", ".join(sorted(values))


class FlagHolder(Generic[_T]):
  """A handle on one flag: ``holder.value`` reads its current value."""

  def __init__(self, name: str, help: str) -> None:  # noqa: A002 (Flax's parameter name)
    self.name = name
    self.__doc__ = f"Flag holder for `{name}`.\n\n{help}"

  def __bool__(self) -> bool:
    raise TypeError(
      f"FlagHolder {self.name!r} has no truth value: read its current value with `.value`"
    )

  @property
  def value(self) -> _T:
    return config._read(self.name)

  def __repr__(self) -> str:
    return f"FlagHolder({self.name!r}, value={self.value!r})"


config = Config()
temp_flip_flag = config.temp_flip_flag


def _define(name: str, default: Any, help: str, kind: type, read_env) -> FlagHolder:  # noqa: A002
  name = name.lower()
  config._add_option(name, read_env(name.upper(), default), kind)
  holder: FlagHolder = FlagHolder(name, help)
  setattr(Config, name, property(lambda _: holder.value, doc=help))
  return holder


def bool_flag(name: str, *, default: bool, help: str) -> FlagHolder[bool]:  # noqa: A002
  """Defines a boolean flag, settable through the environment variable ``NAME.upper()``."""
  return _define(name, default, help, bool, static_bool_env)


def int_flag(name: str, *, default: int | None, help: str) -> FlagHolder[int]:  # noqa: A002
  """Defines an integer (or None) flag, settable through the environment variable."""
  return _define(name, default, help, int, static_int_env)


def static_bool_env(varname: str, default: bool) -> bool:
  """Reads a boolean from the environment (``1/0``, ``true/false``, ``yes/no``, ``on/off``)."""
  raw = os.getenv(varname)
  if raw is None:
    return default
  if raw.lower() in _TRUE:
    return True
  if raw.lower() in _FALSE:
    return False
  raise ConfigFlagError(varname, f"environment value {raw!r} is not a truth value",
                        f"set {varname} to one of {', '.join(_TRUE + _FALSE)}")


def static_int_env(varname: str, default: int | None) -> int | None:
  """Reads an integer from the environment, or ``default`` when the variable is unset."""
  raw = os.getenv(varname)
  if raw is None:
    return default
  try:
    return int(raw)
  except ValueError:
    raise ConfigFlagError(varname, f"environment value {raw!r} is not an integer",
                          f"set {varname} to an integer or unset it") from None


# The flags, with Flax 0.12's names and defaults. Several only matter to Flax's own
# implementation (flaxlib, array refs, hijax); they are kept so programs that set them run.
flax_filter_frames = bool_flag(
  "flax_filter_frames", default=True,
  help="Hide the library's own stack frames from tracebacks.")
flax_profile = bool_flag(
  "flax_profile", default=True,
  help="Run Linen Module methods under jax.named_scope so profiles show the module path.")
flax_use_orbax_checkpointing = bool_flag(
  "flax_use_orbax_checkpointing", default=True,
  help="Save flaxen.training.checkpoints with Orbax (False: the legacy msgpack files).")
flax_preserve_adopted_names = bool_flag(
  "flax_preserve_adopted_names", default=False,
  help="Linen: keep the name of a module created outside and adopted by a parent.")
flax_return_frozendict = bool_flag(
  "flax_return_frozendict", default=False,
  help="Linen: init and apply return FrozenDicts instead of plain dicts.")
flax_fix_rng = bool_flag(
  "flax_fix_rng_separator", default=False,
  help="Separate the folded-in names when deriving Linen rng keys.")
flax_use_flaxlib = bool_flag(
  "flax_use_flaxlib", default=False,
  help="Accepted for compatibility; flaxen has no separate C++ extension.")
flax_array_ref = bool_flag(
  "flax_array_ref", default=False,
  help="Accepted for compatibility: NNX Variables built on JAX array refs.")
flax_pytree_module = bool_flag(
  "flax_pytree_module", default=True,
  help="NNX Modules are JAX pytrees by default.")
flax_max_repr_depth = int_flag(
  "flax_max_repr_depth", default=None,
  help="Maximum depth of nested reprs of NNX objects (None: no limit).")
flax_always_shard_variable = bool_flag(
  "flax_always_shard_variable", default=True,
  help="A new NNX Variable with sharding metadata is laid out at once under a mesh.")
flax_hijax_variable = bool_flag(
  "flax_hijax_variable", default=False,
  help="Accepted for compatibility: NNX Variables as HiJAX types.")
nnx_graph_mode = bool_flag(
  "nnx_graph_mode", default=True,
  help="NNX functions and transforms default to graph mode (False: tree mode).")
nnx_graph_updates = bool_flag(
  "nnx_graph_updates", default=True,
  help="In graph mode, NNX transforms propagate structural changes back to their inputs.")
