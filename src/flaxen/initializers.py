"""Parameter initializers, shared by Linen (``nn.initializers``) and NNX.

An initializer is a function ``init(key, shape, dtype=float32) -> array``. The ones built
from parameters (``normal(stddev)``, ``variance_scaling(...)``, ``zeros_init()``) are
factories that return such a function. ``zeros`` and ``ones`` are initializers themselves.

>>> import jax
>>> from flaxen import initializers
>>> init = initializers.lecun_normal()
>>> init(jax.random.key(0), (3, 4)).shape
(3, 4)
>>> initializers.zeros_init()(jax.random.key(0), (2,))
Array([0., 0.], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.nn import initializers as _jax_init
from jax.nn.initializers import (
  constant,
  glorot_normal,
  glorot_uniform,
  he_normal,
  he_uniform,
  kaiming_normal,
  kaiming_uniform,
  lecun_normal,
  lecun_uniform,
  normal,
  ones,
  truncated_normal,
  uniform,
  variance_scaling,
  xavier_normal,
  xavier_uniform,
  zeros,
)

from flaxen.typing import Initializer

__all__ = [
  "Initializer", "constant", "delta_orthogonal", "glorot_normal", "glorot_uniform", "he_normal",
  "he_uniform", "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform", "normal",
  "ones", "ones_init", "orthogonal", "truncated_normal", "uniform", "variance_scaling",
  "xavier_normal", "xavier_uniform", "zeros", "zeros_init",
]


def zeros_init() -> Initializer:
  """An initializer that returns zeros, in the factory form the other initializers use.

  >>> import jax
  >>> zeros_init()(jax.random.key(0), (2, 1), jax.numpy.int32).tolist()
  [[0], [0]]
  """
  return zeros


def ones_init() -> Initializer:
  """An initializer that returns ones, in the factory form the other initializers use.

  >>> import jax
  >>> ones_init()(jax.random.key(0), (3,)).tolist()
  [1.0, 1.0, 1.0]
  """
  return ones


def _in_float32(init: Any, dtype: Any) -> Initializer:
  """``init`` computed in at least float32 and cast to the requested dtype: JAX's QR (and
  so its orthogonal initializers) rejects half precision since JAX 0.12."""

  def wrapped(key: jax.Array, shape: Any, dtype: Any = dtype) -> jax.Array:
    if dtype is None:
      return init(key, shape)
    compute = jnp.promote_types(dtype, jnp.float32)  # bf16/f16 -> f32; f64, complex kept
    return init(key, shape, compute).astype(dtype)

  return wrapped


def orthogonal(scale: Any = 1.0, column_axis: int = -1, dtype: Any = None) -> Initializer:
  """A (semi-)orthogonal matrix times ``scale`` over the last two axes (or ``column_axis``),
  as ``jax.nn.initializers.orthogonal``; half-precision dtypes are computed in float32.

  >>> import jax
  >>> w = orthogonal()(jax.random.key(0), (3, 3), jax.numpy.bfloat16)
  >>> w.dtype, bool(jax.numpy.allclose(w.astype(float) @ w.T.astype(float), jax.numpy.eye(3),
  ...                                   atol=2e-2))
  (dtype(bfloat16), True)
  """
  return _in_float32(_jax_init.orthogonal(scale, column_axis), dtype)


def delta_orthogonal(scale: Any = 1.0, column_axis: int = -1, dtype: Any = None) -> Initializer:
  """A delta-orthogonal convolution kernel (orthogonal at the spatial centre, zero
  elsewhere), as ``jax.nn.initializers.delta_orthogonal``; half precision is computed in
  float32.
  """
  return _in_float32(_jax_init.delta_orthogonal(scale, column_axis), dtype)
