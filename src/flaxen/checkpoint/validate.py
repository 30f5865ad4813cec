"""Checking a restore target against a checkpoint's stored metadata, before any array loads.

Shapes must be equal. Dtypes must be equal too, except where either side is a Python
scalar (a ``step`` counter saved as ``int`` and restored into an ``int32`` array, or the
reverse): there only the kind (bool, integer, float, complex) must agree, since JAX and
Python disagree about the width of a scalar's type without anything being wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from flaxen import errors
from flaxen.checkpoint.layout import Names, is_python_scalar, path_str
from flaxen.errors.base import names as quoted

# jnp.issubdtype, unlike numpy's dtype.kind, knows bfloat16, float8 and int4 apart.
_KINDS = (jnp.bool_, jnp.integer, jnp.floating, jnp.complexfloating)


def _spec(leaf: Any, names: Names) -> tuple[tuple[int, ...], np.dtype, bool]:
  """(shape, dtype, loose) of a target leaf; loose if its dtype width is not meaningful."""
  if is_python_scalar(leaf):
    return (), np.asarray(leaf).dtype, True
  if isinstance(leaf, jax.Array | jax.ShapeDtypeStruct | np.ndarray | np.generic):
    return tuple(leaf.shape), np.dtype(leaf.dtype), False
  raise errors.UnsupportedCheckpointLeafError(
    path_str(names), leaf,
    "jax or numpy arrays, jax.ShapeDtypeStruct and bool/int/float scalars as restore targets",
  )


def describe(shape: tuple[int, ...], dtype: Any) -> str:
  return f"{np.dtype(dtype).name}{list(shape)}"


def _kind(dtype: np.dtype) -> Any:
  return next((kind for kind in _KINDS if jnp.issubdtype(dtype, kind)), dtype)


def _children(stored: Mapping[Names, Any], prefix: Names) -> list[str]:
  depth = len(prefix)
  return sorted({n[depth] for n in stored if len(n) > depth and n[:depth] == prefix})


def _missing(checkpoint: str, names: Names, stored: Mapping[Names, Any], expected: str):
  # Name the deepest level the checkpoint does have, so the user sees what differs.
  for depth in range(len(names) - 1, -1, -1):
    keys = _children(stored, names[:depth])
    if keys:
      at = path_str(names[:depth]) if depth else "the top level"
      return errors.CheckpointMismatchError(
        checkpoint, path_str(names), expected,
        f"no such entry (at {at} it holds {quoted(keys)})",
      )
  return errors.CheckpointMismatchError(checkpoint, path_str(names), expected, "no such entry")


def check(checkpoint: str, target: Mapping[Names, Any], stored: Mapping[Names, Any]) -> None:
  """Raise :class:`CheckpointMismatchError` at the first path where target and stored differ.

  Args:
    checkpoint: the checkpoint's path, for the message.
    target: the target's leaves by path names, in flattening order.
    stored: the stored metadata (with ``shape`` and ``dtype``) by path names.
  """
  for names, leaf in target.items():
    shape, dtype, loose = _spec(leaf, names)
    expected = describe(shape, dtype)
    meta = stored.get(names)
    if meta is None:
      raise _missing(checkpoint, names, stored, expected)
    found_shape, found_dtype = tuple(meta.shape), np.dtype(meta.dtype)
    found = describe(found_shape, found_dtype)
    if found_shape != shape:
      raise errors.CheckpointMismatchError(checkpoint, path_str(names), expected, found)
    loose = loose or isinstance(meta, ocp.metadata.ScalarMetadata)
    if found_dtype != dtype and not (loose and _kind(found_dtype) == _kind(dtype)):
      raise errors.CheckpointMismatchError(checkpoint, path_str(names), expected, found)
  for names in stored:
    if names not in target:
      raise errors.CheckpointMismatchError(
        checkpoint, path_str(names), "no such entry (the target's tree lacks it)",
        f"a leaf {describe(stored[names].shape, stored[names].dtype)}",
      )
