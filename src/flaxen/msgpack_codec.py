"""msgpack encoding of nested state dicts whose leaves are arrays and scalars.

The wire format matches Flax's, so bytes written by either library restore in the other:
an array is msgpack extension 1 holding ``(shape, dtype name, C-order bytes)``, a NumPy
scalar extension 3 holding the same for shape ``()`` (older flaxen wrote
``(dtype name, bytes)``, still read), a Python complex extension 2 holding
``(real, imag)``. Arrays over ``max_chunk_bytes`` (1 GiB) are split into chunks. Decoding
only ever builds NumPy arrays of the dtypes in a whitelist (bool, integers, floats of every
width ml_dtypes and NumPy know, complex, datetime64 / timedelta64 with their unit):
restoring bytes never executes code and never creates object arrays.
"""

from __future__ import annotations

import enum
import math
import re
from typing import Any

import jax
import ml_dtypes
import msgpack
import numpy as np

from flaxen import errors

MAX_CHUNK_BYTES = 2**30
_CHUNKED_MARK = "__msgpack_chunked_array__"


class _Ext(enum.IntEnum):
  ndarray = 1
  native_complex = 2
  npscalar = 3


def _allowed_dtypes() -> dict[str, np.dtype]:
  names = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
  ]
  dtypes = {n: np.dtype(n) for n in names}
  for extended in (np.longdouble, np.clongdouble):  # float128 / complex256 where they exist
    dtypes[np.dtype(extended).name] = np.dtype(extended)
  for name in (
    "bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e4m3b11fnuz", "float8_e5m2",
    "float8_e5m2fnuz", "float8_e3m4", "float8_e4m3", "float8_e8m0fnu", "float4_e2m1fn",
    "float6_e2m3fn", "float6_e3m2fn", "int2", "int4", "uint2", "uint4",
  ):
    if hasattr(ml_dtypes, name):
      dtypes[name] = np.dtype(getattr(ml_dtypes, name))
  return dtypes


_DTYPES = _allowed_dtypes()


# datetime64 / timedelta64 with an optional unit and count, e.g. "timedelta64[10ms]"
_TIME_DTYPE = re.compile(
  r"(datetime64|timedelta64)(\[\d{0,9}(Y|M|W|D|h|m|s|ms|us|ns|ps|fs|as)\])?")


def _dtype_from_name(name: Any) -> np.dtype:
  if isinstance(name, str) and _TIME_DTYPE.fullmatch(name):
    return np.dtype(name)
  if not isinstance(name, str) or name not in _DTYPES:
    raise errors.SerializationError(
      f"Cannot restore an array of dtype {name!r}: only numeric and bool dtypes are "
      f"stored by flaxen ({', '.join(sorted(_DTYPES))}). The bytes are corrupted or were "
      "not written by flaxen or Flax."
    )
  return _DTYPES[name]


# ------------------------------------------------------------------------------ encode


def _as_numpy(x: Any) -> np.ndarray:
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    raise errors.SerializationError(
      f"Cannot serialize a typed PRNG key array (dtype {x.dtype}). Fix: store "
      "jax.random.key_data(key) and rebuild it with jax.random.wrap_key_data."
    )
  arr = np.asarray(x)
  if arr.dtype.name not in _DTYPES and not _TIME_DTYPE.fullmatch(arr.dtype.name):
    raise errors.SerializationError(
      f"Cannot serialize an array of dtype {arr.dtype}: flaxen stores numeric and bool "
      "arrays only. Fix: convert the value to a numeric array or keep it out of the state."
    )
  # The format stores the dtype by name, which has no byte order: write native order.
  return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _ndarray_bytes(arr: np.ndarray) -> bytes:
  return msgpack.packb((arr.shape, arr.dtype.name, arr.tobytes("C")), use_bin_type=True)


def _default(obj: Any) -> Any:
  if isinstance(obj, np.ndarray | jax.Array):
    return msgpack.ExtType(_Ext.ndarray, _ndarray_bytes(_as_numpy(obj)))
  if isinstance(obj, np.generic):
    return msgpack.ExtType(_Ext.npscalar, _ndarray_bytes(_as_numpy(obj)))
  if isinstance(obj, complex):
    return msgpack.ExtType(_Ext.native_complex, msgpack.packb((obj.real, obj.imag)))
  # strict_types sends subclasses of msgpack's own types here (so that NumPy scalars that
  # subclass float keep their dtype); the rest are stored as their plain base type.
  if isinstance(obj, tuple):
    return list(obj)
  bases: tuple[Any, ...] = (dict, bool, int, float, str, bytes)
  for base in bases:
    if isinstance(obj, base):
      return base(obj)
  raise errors.SerializationError(
    f"Cannot serialize a value of type {type(obj).__name__}: state dicts hold dicts with "
    "string keys, lists, arrays, scalars, strings, bytes and None. Fix: register the type "
    "with flaxen.serialization.register_serialization_state."
  )


def _chunk_large_arrays(tree: Any, limit: int) -> Any:
  """Arrays over ``limit`` bytes as Flax's chunked form: ``{mark: True, "shape": {"0": d0,
  ...}, "chunks": {"0": flat part, ...}}``."""
  if isinstance(tree, dict):
    return {k: _chunk_large_arrays(v, limit) for k, v in tree.items()}
  if isinstance(tree, list | tuple):
    return [_chunk_large_arrays(v, limit) for v in tree]
  if isinstance(tree, np.ndarray | jax.Array) and tree.nbytes > limit:
    flat = _as_numpy(tree).reshape(-1)
    per_chunk = max(1, int(limit / max(1, flat.dtype.itemsize)))
    chunks = {str(i): flat[s : s + per_chunk] for i, s in enumerate(range(0, flat.size, per_chunk))}
    shape = {str(i): d for i, d in enumerate(tree.shape)}
    return {_CHUNKED_MARK: True, "shape": shape, "chunks": chunks}
  return tree


def msgpack_serialize(
  pytree: Any, in_place: bool = False, max_chunk_bytes: int | None = None
) -> bytes:
  """Encode a nested state dict (dicts, lists, arrays, scalars) as msgpack bytes.

  Args:
    pytree: the state dict, usually from :func:`flaxen.serialization.to_state_dict`.
    in_place: accepted for Flax compatibility; the input is never modified either way.
    max_chunk_bytes: arrays larger than this are stored in chunks (default
      :data:`MAX_CHUNK_BYTES`; msgpack cannot hold one object over 2 GiB).

  Returns:
    The encoded bytes.
  """
  del in_place
  limit = MAX_CHUNK_BYTES if max_chunk_bytes is None else max_chunk_bytes
  try:
    return msgpack.packb(_chunk_large_arrays(pytree, limit), default=_default, strict_types=True)
  except (TypeError, ValueError, OverflowError) as e:
    if isinstance(e, errors.FlaxenError):
      raise
    raise errors.SerializationError(f"Cannot encode the state as msgpack: {e}") from e


# ------------------------------------------------------------------------------ decode


def _unpack(data: bytes) -> Any:
  return msgpack.unpackb(data, raw=False)


def _checked_shape(shape: Any) -> tuple[int, ...]:
  if not isinstance(shape, list | tuple) or not all(
    type(d) is int and d >= 0 for d in shape
  ):
    raise errors.SerializationError(f"Invalid array shape {shape!r} in msgpack data.")
  return tuple(shape)


def _values(buffer: bytes, dtype: np.dtype) -> np.ndarray:
  """The flat array in ``buffer``. A bool byte other than 0 or 1 is rejected: NumPy would
  show it as True, but JAX compares it unequal to True."""
  if dtype == np.bool_ and buffer.translate(None, b"\x00\x01"):
    raise errors.SerializationError(
      "Bool data in msgpack data holds bytes other than 0 and 1: it is corrupted or was "
      "not written by flaxen or Flax."
    )
  return np.frombuffer(buffer, dtype=dtype)


def _ndarray_from(data: bytes) -> np.ndarray:
  shape, dtype_name, buffer = _unpack(data)
  dtype, shape = _dtype_from_name(dtype_name), _checked_shape(shape)
  if not isinstance(buffer, bytes) or len(buffer) != math.prod(shape) * dtype.itemsize:
    raise errors.SerializationError(
      f"Array data of shape {shape} and dtype {dtype.name} should hold "
      f"{math.prod(shape) * dtype.itemsize} bytes, found "
      f"{len(buffer) if isinstance(buffer, bytes) else type(buffer).__name__}."
    )
  return _values(buffer, dtype).reshape(shape).copy()


def _ext_hook(code: int, data: bytes) -> Any:
  try:
    if code == _Ext.ndarray:
      return _ndarray_from(data)
    if code == _Ext.npscalar:
      fields = _unpack(data)
      if isinstance(fields, list) and len(fields) == 3:  # Flax's (shape, dtype, bytes)
        return _ndarray_from(data)[()]
      dtype_name, buffer = fields
      dtype = _dtype_from_name(dtype_name)
      if not isinstance(buffer, bytes) or len(buffer) != dtype.itemsize:
        raise errors.SerializationError("Invalid NumPy scalar in msgpack data.")
      return _values(buffer, dtype)[0]
    if code == _Ext.native_complex:
      real, imag = _unpack(data)
      return complex(real, imag)
  except errors.FlaxenError:
    raise
  except Exception as e:  # malformed payload inside a valid extension frame
    raise errors.SerializationError(f"Malformed msgpack extension {code}: {e}") from e
  raise errors.SerializationError(f"Unknown msgpack extension type {code}.")


def _unchunk(tree: Any) -> Any:
  if isinstance(tree, dict):
    _check_keys_sort(tree)
    if tree.get(_CHUNKED_MARK) is True:
      return _join_chunks(tree)
    return {k: _unchunk(v) for k, v in tree.items()}
  if isinstance(tree, list):
    return [_unchunk(v) for v in tree]
  if isinstance(tree, msgpack.Timestamp):  # extension -1: msgpack decodes it before ext_hook
    raise errors.SerializationError(
      "The msgpack data holds a timestamp (extension type -1), which flaxen never writes. "
      "The bytes are corrupted or were not written by flaxen or Flax.")
  return tree


def _check_keys_sort(node: dict) -> None:
  """JAX sorts a dict's keys to flatten it: keys that do not compare (str beside a number,
  say) would make the restored state fail in every jax.tree function."""
  try:
    sorted(node)
  except TypeError:
    kinds = sorted({type(k).__name__ for k in node})
    raise errors.SerializationError(
      f"A map in the msgpack data has keys of types {', '.join(kinds)} that do not sort "
      "together, so JAX could not flatten it. The bytes are corrupted or were not written "
      "by flaxen or Flax."
    ) from None


def _join_chunks(node: dict) -> np.ndarray:
  shape = node.get("shape")
  if isinstance(shape, dict):  # Flax writes {"0": d0, "1": d1, ...}; older flaxen a list
    shape = [shape.get(str(i), -1) for i in range(len(shape))]
  chunks, shape = node.get("chunks"), _checked_shape(shape)
  parts: list[Any] | None = (
    [chunks.get(str(i)) for i in range(len(chunks))] if isinstance(chunks, dict) else None)
  if not parts or not all(isinstance(p, np.ndarray) and p.ndim == 1 for p in parts):
    raise errors.SerializationError("Malformed chunked array in msgpack data.")
  flat = np.concatenate(parts)
  if flat.size != math.prod(shape):
    raise errors.SerializationError(
      f"Chunked array of shape {shape} holds {flat.size} elements."
    )
  return flat.reshape(shape)


def msgpack_restore(encoded_pytree: bytes) -> Any:
  """Decode bytes written by :func:`msgpack_serialize` into a nested state dict.

  Raises:
    flaxen.errors.SerializationError: the bytes are not valid flaxen msgpack data.
  """
  if not isinstance(encoded_pytree, bytes | bytearray | memoryview):
    raise errors.SerializationError(
      f"msgpack_restore expects bytes, got {type(encoded_pytree).__name__}."
    )
  try:
    tree = msgpack.unpackb(encoded_pytree, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    return _unchunk(tree)
  except errors.FlaxenError:
    raise
  except Exception as e:  # msgpack raises many types for malformed input; nesting can be deep
    raise errors.SerializationError(
      f"The bytes are not valid msgpack state ({type(e).__name__}: {e}). They are "
      "truncated, corrupted, or were not written by flaxen.serialization."
    ) from e
