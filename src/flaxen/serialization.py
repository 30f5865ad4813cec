"""State dicts and msgpack bytes for any pytree of registered types.

``to_state_dict`` turns a value into nested dicts of arrays (struct dataclasses, dicts,
lists, tuples and namedtuples become dicts keyed by field name or index);
``from_state_dict`` pours such a dict back into a target of the same structure, and
raises :class:`flaxen.errors.StateMismatchError` naming the first path where the two
differ. ``to_bytes`` / ``from_bytes`` add msgpack encoding (see :mod:`flaxen.msgpack_codec`).

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

import numpy as np

from flaxen import errors
from flaxen.msgpack_codec import msgpack_restore, msgpack_serialize

__all__ = [
  "to_state_dict", "from_state_dict", "register_serialization_state", "to_bytes",
  "from_bytes", "msgpack_serialize", "msgpack_restore", "current_path",
]

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
    target: a value of the structure to restore (its leaves give shapes and dtypes).
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
    _check_leaf(target, state)
    return state
  return handler[1](target, state)


def _describe(x: Any) -> str:
  if hasattr(x, "shape") and hasattr(x, "dtype"):
    return f"array of shape {tuple(x.shape)} and dtype {x.dtype}"
  if isinstance(x, dict):
    return f"dict with keys {_keys(sorted(x, key=str))}"
  return f"{type(x).__name__}"


def _check_leaf(target: Any, state: Any) -> None:
  """A leaf restores a leaf: a subtree or nothing (None) would change the tree's structure;
  an array must keep its shape and dtype. A target of None takes whatever was saved."""
  if target is None:
    return
  if state is None or isinstance(state, dict | list):
    raise errors.StateMismatchError(current_path(), _describe(target), _describe(state))
  if not (hasattr(target, "shape") and hasattr(target, "dtype")):
    return
  if not (hasattr(state, "shape") and hasattr(state, "dtype")):
    raise errors.StateMismatchError(current_path(), _describe(target), _describe(state))
  if tuple(target.shape) != tuple(state.shape) or np.dtype(target.dtype) != np.dtype(state.dtype):
    raise errors.StateMismatchError(current_path(), _describe(target), _describe(state))


def check_keys(state: Any, expected: Iterable[str], what: str) -> None:
  """Raise StateMismatchError unless ``state`` is a dict with exactly ``expected`` keys."""
  expected = list(expected)
  if not isinstance(state, dict):
    raise errors.StateMismatchError(
      current_path(), f"a dict for {what} with keys {_keys(expected)}", _describe(state)
    )
  missing = [k for k in expected if k not in state]
  if missing:
    path = "/".join([*_stack(), str(missing[0])])
    raise errors.StateMismatchError(path, f"a value for {what} key {missing[0]!r}", "nothing")
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
  check_keys(state, [str(k) for k in xs], "dict")
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


def _namedtuple_from_state(nt, state: Any):
  check_keys(state, nt._fields, type(nt).__name__)
  return type(nt)(*(from_state_dict(getattr(nt, f), state[f], name=f) for f in nt._fields))


_NAMEDTUPLE = (_namedtuple_to_state, _namedtuple_from_state)
register_serialization_state(dict, _dict_to_state, _dict_from_state)
register_serialization_state(list, _seq_to_state, _seq_from_state)
register_serialization_state(tuple, _seq_to_state, _seq_from_state)


# ------------------------------------------------------------------------------- bytes


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
