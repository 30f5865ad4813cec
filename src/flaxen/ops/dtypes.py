"""Dtype rules of layers: params live in ``param_dtype``, the computation runs in ``dtype``.

A layer creates its params in ``param_dtype`` (float32 by default), then promotes its inputs
and params together to ``dtype``; with ``dtype=None`` it computes in their JAX result type.

>>> import jax.numpy as jnp
>>> x, w = promote_dtype(jnp.ones(2, jnp.bfloat16), jnp.ones(2), dtype=None)
>>> x.dtype, w.dtype
(dtype('float32'), dtype('float32'))
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from flaxen.errors.layers import NonFloatingDtypeError
from flaxen.ops._lax import cast, is_inexact, same_dtype
from flaxen.typing import Dtype

__all__ = ["canonicalize_dtype", "promote_dtype"]


def canonicalize_dtype(*args: Any, dtype: Dtype | None = None, inexact: bool = True) -> Any:
  """The dtype a computation over ``args`` runs in.

  Args:
    *args: arrays or scalars; ``None`` entries are ignored.
    dtype: the requested dtype; when ``None``, the result type of ``args``.
    inexact: require a floating or complex dtype; an integer result type of ``args`` is
      promoted to float32 (at least).

  Returns:
    A numpy dtype.

  Raises:
    NonFloatingDtypeError: ``inexact`` is set and the requested ``dtype`` is not inexact.

  >>> canonicalize_dtype(jnp.ones(2, jnp.int32))
  dtype('float32')
  """
  if dtype is None:
    present = [a for a in args if a is not None]
    # Arrays of one dtype (the usual layer call) need no promotion lattice.
    dtype = same_dtype(*present)
    if dtype is None:
      present = [jnp.asarray(a) if isinstance(a, list | tuple) else a for a in present]
      dtype = jnp.result_type(*present)
    if inexact and not is_inexact(dtype):
      dtype = jnp.promote_types(jnp.float32, dtype)
  dtype = jnp.dtype(dtype)
  if inexact and not is_inexact(dtype):
    raise NonFloatingDtypeError(dtype)
  return dtype


def promote_dtype(*args: Any, dtype: Dtype | None = None, inexact: bool = True) -> list[Any]:
  """Casts every non-``None`` argument to the common dtype of :func:`canonicalize_dtype`.

  Returns:
    A list with one entry per argument, ``None`` kept as ``None``.

  >>> [a.dtype for a in promote_dtype(jnp.ones(1), jnp.ones(1), dtype=jnp.float16)]
  [dtype('float16'), dtype('float16')]
  """
  dtype = canonicalize_dtype(*args, dtype=dtype, inexact=inexact)
  return [None if a is None else cast(a, dtype) for a in args]
