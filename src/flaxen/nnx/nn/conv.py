"""Convolution NNX layers: Conv and ConvTranspose over channels-last inputs.

Inputs are ``(*batch, *spatial, features)``; the math is :mod:`flaxen.ops.conv`.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> conv = nnx.Conv(3, 4, kernel_size=(3, 3), rngs=nnx.Rngs(0))
>>> conv.kernel.value.shape, conv(jnp.ones((2, 8, 8, 3))).shape
((3, 3, 3, 4), (2, 8, 8, 4))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from flaxen.nnx.module import Module
from flaxen.nnx.nn.defaults import NO_METADATA, default_bias_init, default_kernel_init, rule_of
from flaxen.nnx.nn.dtypes import promote_dtype as default_promote_dtype
from flaxen.nnx.rnglib import Rngs
from flaxen.nnx.variables import Param
from flaxen.ops import conv as conv_ops
from flaxen.ops.conv import canonicalize_padding
from flaxen.typing import (
  ConvGeneralDilatedT,
  Dtype,
  Initializer,
  PaddingLike,
  PrecisionLike,
  PromoteDtypeFn,
)

__all__ = ["Conv", "ConvTranspose", "canonicalize_padding"]


class _ConvBase(Module):
  """Param creation and the attributes Conv and ConvTranspose share."""

  def _setup(self, in_features: int, out_features: int, kernel_size: int | Sequence[int],
             kernel_shape_tail: tuple[int, int], *, use_bias: bool, mask: jax.Array | None,
             dtype: Dtype | None, param_dtype: Dtype, precision: PrecisionLike,
             kernel_init: Initializer, bias_init: Initializer, promote_dtype: PromoteDtypeFn,
             preferred_element_type: Dtype | None, rngs: Rngs,
             kernel_metadata: Mapping[str, Any], bias_metadata: Mapping[str, Any]) -> None:
    self.kernel_size = ((kernel_size,) if isinstance(kernel_size, int)
                        else tuple(kernel_size))
    self.kernel = Param(kernel_init(rngs.params(), self.kernel_size + kernel_shape_tail,
                                    param_dtype), **kernel_metadata)
    self.bias = (Param(bias_init(rngs.params(), (out_features,), param_dtype), **bias_metadata)
                 if use_bias else None)
    self.in_features = in_features
    self.out_features = out_features
    self.use_bias = use_bias
    self.mask = mask
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.precision = precision
    self.promote_dtype = promote_dtype
    self.preferred_element_type = preferred_element_type

  def _params(self) -> tuple[jax.Array, jax.Array | None]:
    kernel = self.kernel.value
    if self.mask is not None:
      kernel = kernel * self.mask
    return kernel, (self.bias.value if self.bias is not None else None)


class Conv(_ConvBase):
  """An N-d convolution (cross-correlation) over channels-last inputs.

  Args:
    in_features: number of input features (channels).
    out_features: number of output features.
    kernel_size: the window size per spatial dim (an int means a 1-d convolution).
    strides: an int or one stride per spatial dim.
    padding: 'SAME', 'VALID', 'CIRCULAR', 'REFLECT', 'CAUSAL', an int, or ints /
      ``(low, high)`` pairs per spatial dim (see :func:`flaxen.ops.conv.conv`).
    input_dilation: dilation of the input per spatial dim.
    kernel_dilation: dilation of the kernel per spatial dim (atrous convolution).
    feature_group_count: number of feature groups (depthwise when equal to ``in_features``).
    use_bias: whether to add a bias.
    mask: multiplied into the kernel on every call (masked convolutions).
    dtype, param_dtype, precision, kernel_init, bias_init, promote_dtype,
      preferred_element_type, rngs, kernel_metadata, bias_metadata: as in :class:`Linear`.
    conv_general_dilated: replaces ``lax.conv_general_dilated``.

  Call with ``out_sharding`` to give the result's sharding. The kernel has shape
  ``(*kernel_size, in_features // feature_group_count, out_features)``.
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int | Sequence[int],
               strides: int | Sequence[int] = 1, *, padding: PaddingLike = "SAME",
               input_dilation: int | Sequence[int] = 1, kernel_dilation: int | Sequence[int] = 1,
               feature_group_count: int = 1, use_bias: bool = True,
               mask: jax.Array | None = None, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, precision: PrecisionLike = None,
               kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = default_bias_init,
               conv_general_dilated: ConvGeneralDilatedT = lax.conv_general_dilated,
               promote_dtype: PromoteDtypeFn = default_promote_dtype,
               preferred_element_type: Dtype | None = None,
               rngs: Rngs, kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    self._setup(in_features, out_features, kernel_size,
                (in_features // feature_group_count, out_features), use_bias=use_bias,
                mask=mask, dtype=dtype, param_dtype=param_dtype, precision=precision,
                kernel_init=kernel_init, bias_init=bias_init, promote_dtype=promote_dtype,
                preferred_element_type=preferred_element_type, rngs=rngs,
                kernel_metadata=kernel_metadata, bias_metadata=bias_metadata)
    self.strides = strides
    self.padding = padding
    self.input_dilation = input_dilation
    self.kernel_dilation = kernel_dilation
    self.feature_group_count = feature_group_count
    self.conv_general_dilated = conv_general_dilated

  def __call__(self, inputs: jax.Array, out_sharding: Any = None) -> jax.Array:
    kernel, bias = self._params()
    return conv_ops.conv(
      inputs, kernel, bias, strides=self.strides, padding=self.padding,
      input_dilation=self.input_dilation, kernel_dilation=self.kernel_dilation,
      feature_group_count=self.feature_group_count, dtype=self.dtype, precision=self.precision,
      conv_general_dilated=self.conv_general_dilated, promote_rule=rule_of(self.promote_dtype),
      preferred_element_type=self.preferred_element_type, out_sharding=out_sharding,
      where=type(self).__name__,
    )


class ConvTranspose(_ConvBase):
  """A transposed convolution (upsampling) over channels-last inputs.

  Args:
    in_features, out_features, kernel_size, use_bias, mask, dtype, param_dtype, precision,
      kernel_init, bias_init, promote_dtype, preferred_element_type, rngs, kernel_metadata,
      bias_metadata: as in :class:`Conv`.
    strides: upsampling step per spatial dim (``None``: 1).
    padding: as in :class:`Conv` ('CIRCULAR' wraps the output onto
      ``input_size * stride``; 'CAUSAL' is not supported).
    kernel_dilation: dilation of the kernel per spatial dim.
    transpose_kernel: flip the kernel and swap its in/out axes (kernel shape
      ``(*kernel_size, out_features, in_features)``), making this the gradient of a
      :class:`Conv` with the same kernel.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> up = nnx.ConvTranspose(2, 3, (3,), strides=2, rngs=nnx.Rngs(0))
  >>> up(jnp.ones((1, 4, 2))).shape
  (1, 8, 3)
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int | Sequence[int],
               strides: int | Sequence[int] | None = None, *, padding: PaddingLike = "SAME",
               kernel_dilation: int | Sequence[int] | None = None, use_bias: bool = True,
               mask: jax.Array | None = None, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, precision: PrecisionLike = None,
               kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = default_bias_init, transpose_kernel: bool = False,
               promote_dtype: PromoteDtypeFn = default_promote_dtype,
               preferred_element_type: Dtype | None = None,
               rngs: Rngs, kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    tail = (out_features, in_features) if transpose_kernel else (in_features, out_features)
    self._setup(in_features, out_features, kernel_size, tail, use_bias=use_bias, mask=mask,
                dtype=dtype, param_dtype=param_dtype, precision=precision,
                kernel_init=kernel_init, bias_init=bias_init, promote_dtype=promote_dtype,
                preferred_element_type=preferred_element_type, rngs=rngs,
                kernel_metadata=kernel_metadata, bias_metadata=bias_metadata)
    self.strides = strides
    self.padding = padding
    self.kernel_dilation = kernel_dilation
    self.transpose_kernel = transpose_kernel

  def __call__(self, inputs: jax.Array) -> jax.Array:
    kernel, bias = self._params()
    return conv_ops.conv_transpose(
      inputs, kernel, bias, strides=self.strides, padding=self.padding,
      kernel_dilation=self.kernel_dilation, transpose_kernel=self.transpose_kernel,
      dtype=self.dtype, precision=self.precision, promote_rule=rule_of(self.promote_dtype),
      preferred_element_type=self.preferred_element_type, where=type(self).__name__,
    )
