"""State dicts and msgpack bytes for any pytree of registered types.

``to_state_dict`` turns a value into nested dicts of arrays (struct dataclasses, dicts,
lists, tuples and namedtuples become dicts keyed by field name or index);
``from_state_dict`` pours such a dict back into a target of the same structure, and
raises :class:`flaxen.errors.StateMismatchError` naming the first path where a container
of the target (a dict's key, a struct's field, a list's length) finds no match; a leaf of
the target takes whatever was saved there, as in Flax. ``to_bytes`` / ``from_bytes`` add
msgpack encoding (see :mod:`flaxen.msgpack_codec`).

>>> import numpy as np
>>> from flaxen import serialization
>>> target = {"w": np.zeros((2,), np.float32), "layers": [np.int32(0)]}
>>> data = serialization.to_bytes({"w": np.ones((2,), np.float32), "layers": [np.int32(7)]})
>>> serialization.from_bytes(target, data)
{'w': array([1., 1.], dtype=float32), 'layers': [np.int32(7)]}
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax

from flaxen import errors, msgpack_codec
from flaxen.msgpack_codec import msgpack_restore

__all__ = [
  "to_state_dict", "from_state_dict", "register_serialization_state", "is_serializable",
  "to_bytes", "from_bytes", "msgpack_serialize", "msgpack_restore", "current_path",
  "MAX_CHUNK_SIZE",
]

# Arrays over this many bytes are written in chunks (msgpack holds at most 2 GiB per
# object). Read at each call, so a program may change it, as in Flax.
MAX_CHUNK_SIZE = msgpack_codec.MAX_CHUNK_BYTES

_REGISTRY: dict[type, tuple[Callable[[Any], Any], Callable[[Any, Any], Any]]] = {}
_path = threading.local()


def _stack() -> list[str]:
  if not hasattr(_path, "names"):
    _path.names = []
  return _path.names


def current_path() -> str:
  """The '/'-joined path of the value ``from_state_dict`` is restoring right now."""
  return "/".join(_stack())


@contextlib.contextmanager
def at_path(name: str) -> Iterator[None]:
  """Inside this context, ``current_path()`` names one level deeper."""
  stack = _stack()
  stack.append(str(name))
  try:
    yield
  finally:
    stack.pop()


def register_serialization_state(
  ty: type,
  ty_to_state_dict: Callable[[Any], Any],
  ty_from_state_dict: Callable[[Any, Any], Any],
  override: bool = False,
) -> None:
  """Teach ``to_state_dict`` / ``from_state_dict`` a new type.

  Args:
    ty: the type.
    ty_to_state_dict: ``value -> state dict``.
    ty_from_state_dict: ``(target, state dict) -> restored value``.
    override: replace an existing registration instead of raising.

  Raises:
    flaxen.errors.SerializationHandlerExistsError: ``ty`` has a handler and not ``override``.
  """
  if ty in _REGISTRY and not override:
    raise errors.SerializationHandlerExistsError(ty)
  _REGISTRY[ty] = (ty_to_state_dict, ty_from_state_dict)


def is_serializable(target: Any) -> bool:
  """Whether ``target`` (an instance or a type) has a registered state-dict handler.

  >>> from flaxen import serialization
  >>> serialization.is_serializable({}), serialization.is_serializable(3.0)
  (True, False)
  """
  ty = target if isinstance(target, type) else type(target)
  return ty in _REGISTRY


def _handler(x: Any):
  ty = type(x)
  if ty in _REGISTRY:
    return _REGISTRY[ty]
  if isinstance(x, tuple) and hasattr(ty, "_fields"):
    return _NAMEDTUPLE
  return None


def to_state_dict(target: Any) -> Any:
  """Turn ``target`` into nested dicts whose leaves are arrays and scalars."""
  handler = _handler(target)
  return handler[0](target) if handler else target


def from_state_dict(target: Any, state: Any, name: str = ".") -> Any:
  """Restore ``state`` into a value with the structure of ``target``.

  Args:
    target: a value of the structure to restore (its containers are matched; a leaf takes the
      saved value, whatever its shape or structure, as in Flax).
    state: a state dict, e.g. from :func:`to_state_dict` or :func:`msgpack_restore`.
    name: the name of this level in error paths (kept for Flax compatibility).

  Raises:
    flaxen.errors.StateMismatchError: at the first path where ``state`` does not fit.
  """
  if name == ".":
    return _restore(target, state)
  with at_path(name):
    return _restore(target, state)


def _restore(target: Any, state: Any) -> Any:
  handler = _handler(target)
  if handler is None:
    # A leaf of the target takes whatever was saved there, whatever its shape or structure
    # (Flax's rule: only registered containers are checked).
    return state
  return handler[1](target, state)


def _describe(x: Any) -> str:
  if hasattr(x, "shape") and hasattr(x, "dtype"):
    return f"array of shape {tuple(x.shape)} and dtype {x.dtype}"
  if isinstance(x, dict):
    return f"dict with keys {_keys(sorted(x, key=str))}"
  return f"{type(x).__name__}"


def check_keys(
  state: Any, expected: Iterable[str], what: str, allow_extra: bool = False
) -> None:
  """Raise StateMismatchError unless ``state`` is a dict with the ``expected`` keys.

  Keys of ``state`` beyond ``expected`` are an error too unless ``allow_extra``.
  """
  expected = list(expected)
  if not isinstance(state, dict):
    raise errors.StateMismatchError(
      current_path(), f"a dict for {what} with keys {_keys(expected)}", _describe(state)
    )
  missing = [k for k in expected if k not in state]
  if missing:
    path = "/".join([*_stack(), str(missing[0])])
    raise errors.StateMismatchError(path, f"a value for {what} key {missing[0]!r}", "nothing")
  if allow_extra:
    return
  wanted = set(expected)
  extra = sorted((k for k in state if k not in wanted), key=str)
  if extra:
    path = "/".join([*_stack(), str(extra[0])])
    raise errors.StateMismatchError(
      path, f"no entry ({what} has keys {_keys(expected)})", _describe(state[extra[0]])
    )


def _keys(keys: list) -> str:
  shown = ", ".join(repr(k) for k in keys[:8])
  return f"[{shown}{', ...' if len(keys) > 8 else ''}]"


# --------------------------------------------------------------- built-in containers


def _dict_to_state(xs: dict) -> dict:
  return {str(k): to_state_dict(v) for k, v in xs.items()}


def _dict_from_state(xs: dict, state: Any) -> dict:
  # Flax drops saved keys the target dict lacks (restoring a subset of a checkpoint)
  check_keys(state, [str(k) for k in xs], "dict", allow_extra=True)
  return {k: from_state_dict(v, state[str(k)], name=str(k)) for k, v in xs.items()}


def _seq_to_state(xs) -> dict:
  return {str(i): to_state_dict(v) for i, v in enumerate(xs)}


def _seq_from_state(xs, state: Any):
  kind = type(xs).__name__
  if isinstance(state, dict) and len(state) != len(xs):
    raise errors.StateMismatchError(
      current_path(), f"a {kind} of length {len(xs)}", f"{len(state)} entries"
    )
  check_keys(state, [str(i) for i in range(len(xs))], kind)
  return type(xs)(from_state_dict(v, state[str(i)], name=str(i)) for i, v in enumerate(xs))


def _namedtuple_to_state(nt) -> dict:
  return {name: to_state_dict(getattr(nt, name)) for name in nt._fields}


_LEGACY_NAMEDTUPLE = {"name", "fields", "values"}


def _namedtuple_from_state(nt, state: Any):
  if (isinstance(state, dict) and set(state) == _LEGACY_NAMEDTUPLE
      and set(nt._fields) != _LEGACY_NAMEDTUPLE):
    state = _legacy_namedtuple_state(state)
  check_keys(state, nt._fields, type(nt).__name__)
  return type(nt)(*(from_state_dict(getattr(nt, f), state[f], name=f) for f in nt._fields))


def _legacy_namedtuple_state(state: dict) -> Any:
  """Flax before 2022 wrote a namedtuple as ``{name, fields: {i: field}, values: {i: v}}``."""
  fields, values = state["fields"], state["values"]
  if not (isinstance(fields, dict) and isinstance(values, dict)):
    return state
  try:
    return {fields[str(i)]: values[str(i)] for i in range(len(fields))}
  except (KeyError, TypeError):
    return state  # not the legacy layout after all: check_keys names the mismatch


def _partial_to_state(p: jax.tree_util.Partial) -> dict:
  return {"args": to_state_dict(list(p.args)), "keywords": to_state_dict(dict(p.keywords))}


def _partial_from_state(p: jax.tree_util.Partial, state: Any) -> jax.tree_util.Partial:
  check_keys(state, ["args", "keywords"], "Partial")
  args = from_state_dict(list(p.args), state["args"], name="args")
  keywords = from_state_dict(dict(p.keywords), state["keywords"], name="keywords")
  return jax.tree_util.Partial(p.func, *args, **keywords)


_NAMEDTUPLE = (_namedtuple_to_state, _namedtuple_from_state)
register_serialization_state(dict, _dict_to_state, _dict_from_state)
register_serialization_state(list, _seq_to_state, _seq_from_state)
register_serialization_state(tuple, _seq_to_state, _seq_from_state)
register_serialization_state(jax.tree_util.Partial, _partial_to_state, _partial_from_state)


# ------------------------------------------------------------------------------- bytes


def msgpack_serialize(pytree: Any, in_place: bool = False) -> bytes:
  """Encode a nested state dict (dicts, lists, arrays, scalars) as msgpack bytes.

  Arrays larger than :data:`MAX_CHUNK_SIZE` bytes are stored in chunks.

  Args:
    pytree: the state dict, usually from :func:`to_state_dict`.
    in_place: accepted for Flax compatibility; the input is never modified either way.

  Returns:
    The encoded bytes.
  """
  return msgpack_codec.msgpack_serialize(pytree, in_place, max_chunk_bytes=MAX_CHUNK_SIZE)


def to_bytes(target: Any) -> bytes:
  """Serialize ``target`` (any registered pytree) to msgpack bytes."""
  return msgpack_serialize(to_state_dict(target))


def from_bytes(target: Any, encoded_bytes: bytes) -> Any:
  """Restore bytes from :func:`to_bytes` into a value with the structure of ``target``.

  Raises:
    flaxen.errors.SerializationError: the bytes are not valid flaxen msgpack data.
    flaxen.errors.StateMismatchError: they do not match the structure of ``target``.
  """
  return from_state_dict(target, msgpack_restore(encoded_bytes))
