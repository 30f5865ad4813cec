"""FP8 matmuls with delayed scaling (the math of Linen's ``Fp8DotGeneral`` / ``Fp8Einsum``).

Inputs and kernels are quantized to ``e4m3``, output gradients to ``e5m2``. Each operand
has a ``scale`` and an ``amax_history`` (its recent absolute maxima): the scale used now
comes from the history's maximum, and the history gains this call's maximum. Their new
values travel back as the *gradients* of the scale and history (custom VJPs), so an
optimizer that overwrites them with their gradient (the ``_overwrite_with_gradient``
collection) keeps them current. Everything runs on any backend: the quantized values are
dequantized into the compute dtype before the matmul.

>>> import jax.numpy as jnp
>>> x = jnp.array([1.0, 300.0, 1000.0])
>>> qdq(x, jnp.float8_e4m3fn, jnp.array([1.0]), jnp.float32).tolist()   # e4m3 max is 448
[1.0, 288.0, 448.0]
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from flaxen.typing import Array, Dtype

__all__ = [
  "amax_history_update", "compute_scale", "fp8_max", "in_qdq", "out_qdq", "qdq",
  "quantize_and_update",
]


def fp8_max(dtype: Dtype, compute_dtype: Dtype = jnp.float32) -> Array:
  """The largest finite value of ``dtype``, in ``compute_dtype``."""
  return jnp.asarray(jnp.finfo(dtype).max, compute_dtype)


def qdq(x: Array, dtype: Dtype, scale: Array, compute_dtype: Dtype) -> Array:
  """``x / scale`` clipped to ``dtype``'s range and rounded to ``dtype``, then scaled back
  into ``compute_dtype``."""
  limit = fp8_max(dtype, compute_dtype)
  scale = scale.astype(compute_dtype)
  q = jnp.clip(x.astype(compute_dtype) / scale, -limit, limit).astype(dtype)
  return q.astype(compute_dtype) * scale


def compute_scale(amax: Array, scale: Array, limit: Array, margin: int = 0) -> Array:
  """The scale mapping ``amax`` to ``limit / 2**margin``; the old ``scale`` where ``amax``
  is not finite, 1 where it is 0."""
  factor = (limit / amax) / (2.0 ** margin)
  factor = jnp.where(amax > 0.0, factor, 1.0)
  return jnp.where(jnp.isfinite(amax), 1.0 / factor, scale)


def amax_history_update(x: Array, history: Array) -> Array:
  """``history`` rolled by one, with this ``x``'s absolute maximum in front."""
  amax = jnp.max(jnp.abs(x)).astype(history.dtype)
  return jnp.roll(history, -1, 0).at[0].set(amax)


def quantize_and_update(x: Array, dtype: Dtype, scale: Array, history: Array,
                        compute_dtype: Dtype) -> tuple[Array, Array, Array]:
  """``(qdq(x), new_scale, new_history)``, the scale from the history's maximum."""
  new_scale = compute_scale(jnp.max(history, axis=0), scale, fp8_max(dtype, jnp.float32))
  new_history = amax_history_update(x, history)
  return qdq(x, dtype, new_scale, compute_dtype), new_scale, new_history


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def in_qdq(compute_dtype: Dtype, dtype: Dtype, x: Array, scale: Array,
           history: Array) -> Array:
  """An input or kernel quantized to ``dtype``; the gradient passes straight through to
  ``x``, and the new ``scale`` / ``history`` come back as their gradients."""
  return quantize_and_update(x, dtype, scale, history, compute_dtype)[0]


def _in_fwd(compute_dtype: Dtype, dtype: Dtype, x: Array, scale: Array,
            history: Array) -> tuple[Array, tuple[Array, Array]]:
  y, new_scale, new_history = quantize_and_update(x, dtype, scale, history, compute_dtype)
  return y, (new_scale, new_history)


def _in_bwd(compute_dtype: Dtype, dtype: Dtype, res: tuple[Array, Array],
            g: Array) -> tuple[Array, Array, Array]:
  new_scale, new_history = res
  return g, new_scale, new_history


in_qdq.defvjp(_in_fwd, _in_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def out_qdq(compute_dtype: Dtype, dtype: Dtype, y: Array, scale: Array,
            history: Array) -> Array:
  """The identity on the way forward; on the way back the output gradient is quantized to
  ``dtype``, and the new ``scale`` / ``history`` come back as their gradients."""
  return y


def _out_fwd(compute_dtype: Dtype, dtype: Dtype, y: Array, scale: Array,
             history: Array) -> tuple[Array, tuple[Array, Array]]:
  return y, (scale, history)


def _out_bwd(compute_dtype: Dtype, dtype: Dtype, res: tuple[Array, Array],
             g: Array) -> tuple[Array, Array, Array]:
  scale, history = res
  q_g, new_scale, new_history = quantize_and_update(g, dtype, scale, history, compute_dtype)
  return q_g, new_scale, new_history


out_qdq.defvjp(_out_fwd, _out_bwd)
