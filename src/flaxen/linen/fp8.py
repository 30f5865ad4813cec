"""FP8 contractions for Linen layers: ``dot_general_cls=nn.Fp8DotGeneral`` (or
``Fp8Einsum`` for attention's einsums) quantizes inputs and kernels to e4m3 and output
gradients to e5m2, with delayed scaling (see :mod:`flaxen.ops.fp8`).

Each instance keeps, in the ``_overwrite_with_gradient`` collection, a scale and an amax
history for the input, the kernel and the output gradient; their gradients are their new
values, so a training step overwrites them with their gradient (instead of applying an
optimizer update). Runs on any backend (CPU included): the quantized values are
dequantized before the contraction.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> layer = nn.Dense(3, dot_general_cls=nn.Fp8DotGeneral)
>>> variables = layer.init(jax.random.key(0), jnp.ones((2, 4)))
>>> sorted(variables['_overwrite_with_gradient']['Fp8DirectDotGeneralOp_0'])[:2]
['input_amax_history', 'input_scale']
"""

from __future__ import annotations

import warnings
from typing import Any

import jax.numpy as jnp
from jax import lax

from flaxen.linen.module import Module
from flaxen.ops.fp8 import in_qdq, out_qdq
from flaxen.typing import Array, Dtype, PrecisionLike

__all__ = [
  "Fp8DirectDotGeneralOp", "Fp8DotGeneral", "Fp8DotGeneralOp", "Fp8Einsum",
  "NANOOFp8DotGeneralOp",
]

OVERWRITE_WITH_GRADIENT = "_overwrite_with_gradient"


class _Fp8Base(Module):
  """The scales and amax histories of the input, the kernel and the output gradient."""

  amax_history_length: int = 1024
  e4m3_dtype: Dtype = jnp.float8_e4m3fn
  e5m2_dtype: Dtype = jnp.float8_e5m2

  def setup(self) -> None:
    def ones() -> Array:
      return jnp.ones((1,), jnp.float32)

    def zeros() -> Array:
      return jnp.zeros((self.amax_history_length,), jnp.float32)

    for name in ("input", "kernel", "output_grad"):
      setattr(self, f"{name}_amax_history", self.variable(OVERWRITE_WITH_GRADIENT,
                                                          f"{name}_amax_history", zeros))
      setattr(self, f"{name}_scale", self.variable(OVERWRITE_WITH_GRADIENT, f"{name}_scale",
                                                   ones))

  def _quantized(self, lhs: Array, rhs: Array) -> tuple[Array, Array, Any]:
    """Both operands quantized and dequantized in the kernel's dtype (the layer's compute
    dtype)."""
    dtype = rhs.dtype
    lhs = in_qdq(dtype, self.e4m3_dtype, jnp.asarray(lhs, dtype), self.input_scale.value,
                 self.input_amax_history.value)
    rhs = in_qdq(dtype, self.e4m3_dtype, rhs, self.kernel_scale.value,
                 self.kernel_amax_history.value)
    return lhs, rhs, dtype

  def _output(self, y: Array, dtype: Any) -> Array:
    return out_qdq(dtype, self.e5m2_dtype, y, self.output_grad_scale.value,
                   self.output_grad_amax_history.value)


class Fp8DirectDotGeneralOp(_Fp8Base):
  """A ``lax.dot_general`` replacement (``dot_general_cls``) computing in FP8."""

  def __call__(self, *args: Any, **kwargs: Any) -> Array:
    """``lax.dot_general(lhs, rhs, dimension_numbers, ...)``'s arguments."""
    lhs, rhs, *rest = args
    lhs, rhs, dtype = self._quantized(lhs, rhs)
    return self._output(lax.dot_general(lhs, rhs, *rest, **kwargs), dtype)


Fp8DotGeneral = Fp8DirectDotGeneralOp


class Fp8DotGeneralOp(Fp8DirectDotGeneralOp):
  """The older name of :class:`Fp8DotGeneral` (deprecated in Flax; warns once made)."""

  def setup(self) -> None:
    warnings.warn("Fp8DotGeneralOp is deprecated; use Fp8DotGeneral.", DeprecationWarning,
                  stacklevel=2)
    super().setup()


class NANOOFp8DotGeneralOp(Fp8DotGeneralOp):
  """:class:`Fp8DotGeneral` with the ``fnuz`` FP8 types (no negative zero, no infinities)
  of some accelerators."""

  e4m3_dtype: Dtype = jnp.float8_e4m3fnuz
  e5m2_dtype: Dtype = jnp.float8_e5m2fnuz

  def setup(self) -> None:
    _Fp8Base.setup(self)


class Fp8Einsum(_Fp8Base):
  """A ``jnp.einsum`` replacement for two operands (e.g. attention's
  ``qk_attn_weights_einsum_cls``) computing in FP8."""

  def __call__(self, eqn: str, lhs: Array, rhs: Array, precision: PrecisionLike = None,
               preferred_element_type: Dtype | None = None) -> Array:
    lhs, rhs, dtype = self._quantized(lhs, rhs)
    y = jnp.einsum(eqn, lhs, rhs, precision=precision,
                   preferred_element_type=preferred_element_type)
    return self._output(y, dtype)
