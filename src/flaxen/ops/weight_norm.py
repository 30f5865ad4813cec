"""Reparametrized weights: weight normalization and spectral normalization.

Both wrap a layer's params (usually its kernel) in the Linen and NNX ``WeightNorm`` /
``SpectralNorm`` layers; the math is here.

>>> import jax.numpy as jnp
>>> w = jnp.array([[3., 0.], [4., 2.]])
>>> weight_norm(w, None, feature_axes=(1,)).tolist()
[[0.6000000238418579, 0.0], [0.800000011920929, 1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from flaxen.ops.dtypes import canonicalize_dtype
from flaxen.typing import Array, Dtype

__all__ = ["l2_normalize", "power_iteration", "spectral_normalize", "weight_norm"]


def l2_normalize(x: Array, axis: int | Sequence[int] | None = None,
                 eps: float = 1e-12) -> Array:
  """``x / sqrt(sum(x**2 over axis) + eps)``."""
  return x * jax.lax.rsqrt((x * x).sum(axis=axis, keepdims=True) + eps)


def weight_norm(value: Array, scale: Array | None, *, feature_axes: Sequence[int] | None,
                epsilon: float = 1e-12, dtype: Dtype | None = None) -> Array:
  """``value`` with unit L2 norm over every axis but ``feature_axes`` (one norm per
  feature; ``None``: one norm over the whole array), times ``scale`` (shaped like the
  feature axes) when given.

  Args:
    value: the weight.
    scale: ``None``, or an array of the sizes of ``value`` on ``feature_axes``.
    feature_axes: non-negative axes kept apart.
    epsilon: added under the square root.
    dtype: the result dtype (``None``: promoted from ``value`` and ``scale``).
  """
  value = jnp.asarray(value)
  feature_axes = () if feature_axes is None else tuple(feature_axes)
  reduction = tuple(i for i in range(value.ndim) if i not in feature_axes)
  out = l2_normalize(value, reduction, epsilon)
  if scale is not None:
    shape = [value.shape[i] if i in feature_axes else 1 for i in range(value.ndim)]
    out = out * jnp.reshape(scale, shape)
  return jnp.asarray(out, canonicalize_dtype(value, scale, dtype=dtype))


def power_iteration(matrix: Array, u: Array, n_steps: int,
                    epsilon: float = 1e-12) -> tuple[Array, Array, Array]:
  """``n_steps`` of power iteration for the top singular value of a 2-d ``matrix``.

  Args:
    matrix: ``(m, n)``.
    u: the ``(1, n)`` right singular vector estimate to start from.
    n_steps: iterations.
    epsilon: added under the square roots of the normalizations.

  Returns:
    ``(u, v, sigma)``: the new estimates (``(1, n)`` and ``(1, m)``, no gradient flows
    through them) and ``sigma = v @ matrix @ u.T``.
  """
  v = None
  for _ in range(n_steps):
    v = l2_normalize(jnp.matmul(u, matrix.T), eps=epsilon)
    u = l2_normalize(jnp.matmul(v, matrix), eps=epsilon)
  u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
  sigma = jnp.matmul(jnp.matmul(v, matrix), u.T)[0, 0]
  return u, v, sigma


def spectral_normalize(value: Array, u: Array, *, n_steps: int = 1, epsilon: float = 1e-12,
                       dtype: Dtype | None = None) -> tuple[Array, Array, Array]:
  """``value`` divided by its top singular value, estimated by :func:`power_iteration`
  from ``u`` (a weight of more than 2 dims is seen as ``(-1, last_dim)``).

  Returns:
    ``(normalized value, new u, sigma)``; a zero ``sigma`` leaves the value unscaled.

  >>> w = jnp.diag(jnp.array([2., 1.]))
  >>> out, u, sigma = spectral_normalize(w, jnp.array([[1., 0.]]))
  >>> float(sigma), out.tolist()
  (2.0, [[1.0, 0.0], [0.0, 0.5]])
  """
  value = jnp.asarray(value)
  matrix = value.reshape(-1, value.shape[-1])
  u, v, sigma = power_iteration(matrix, u, n_steps, epsilon)
  matrix = matrix / jnp.where(sigma != 0, sigma, 1)
  out = jnp.asarray(matrix.reshape(value.shape), canonicalize_dtype(value, u, v, sigma,
                                                                      dtype=dtype))
  return out, u, sigma
