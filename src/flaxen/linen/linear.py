"""Linear Linen layers: Dense, DenseGeneral, Einsum, Conv, ConvTranspose, Embed.

Each layer creates its params (names, shapes and default initializers as in Flax) and
calls the matching function of :mod:`flaxen.ops`.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> variables = nn.Dense(4).init(jax.random.key(0), jnp.ones((2, 3)))
>>> jax.tree.map(jnp.shape, variables)
{'params': {'bias': (4,), 'kernel': (3, 4)}}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax

from flaxen import initializers
from flaxen.core.meta import AxisMetadata
from flaxen.errors.layers import InputShapeError
from flaxen.linen.module import Module, compact, merge_param
from flaxen.linen.param_checks import check_in_features, layer_name
from flaxen.ops import conv as conv_ops
from flaxen.ops import embed as embed_ops
from flaxen.ops import linear as linear_ops
from flaxen.ops.dtypes import from_varargs, promote_dtype
from flaxen.typing import (
  Array,
  ConvGeneralDilatedT,
  DotGeneralT,
  Dtype,
  Initializer,
  PaddingLike,
  PrecisionLike,
  PromoteDtypeFn,
)

__all__ = [
  "Conv", "ConvLocal", "ConvTranspose", "Dense", "DenseGeneral", "Einsum", "Embed",
  "canonicalize_padding", "default_kernel_init",
]

canonicalize_padding = conv_ops.canonicalize_padding
default_kernel_init = initializers.lecun_normal()
default_embed_init = initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)


def _dot_general(dot_general: DotGeneralT | None, dot_general_cls: Any) -> DotGeneralT:
  if dot_general_cls is not None:
    return dot_general_cls()
  return lax.dot_general if dot_general is None else dot_general


def _reshaped_init(init: Initializer, flat_shape: tuple[int, ...]) -> Initializer:
  """Initializes a flat ``flat_shape`` array (so fan-in/out see the flattened dims), then
  reshapes it to the requested shape, keeping any metadata box."""

  def wrapped(key: Any, shape: Sequence[int], dtype: Dtype = jnp.float32) -> Any:
    value = init(key, flat_shape, dtype)
    if isinstance(value, AxisMetadata):
      return value.replace_boxed(jnp.reshape(value.unbox(), shape))
    return jnp.reshape(value, shape)

  return wrapped


class Dense(Module):
  """``y = x @ kernel + bias`` over the last axis.

  Attributes:
    features: number of output features.
    use_bias: whether to add a bias.
    dtype: computation dtype (default: inferred from inputs and params).
    param_dtype: dtype of the params.
    precision: ``lax`` precision of the contraction.
    kernel_init: initializer of the ``(in, features)`` kernel.
    bias_init: initializer of the ``(features,)`` bias.
    promote_dtype: the dtype promotion rule, called as ``promote_dtype(inputs, kernel, bias,
      dtype=dtype)`` (default :func:`flaxen.linen.dtypes.promote_dtype`).
    dot_general: replaces ``lax.dot_general``.
    dot_general_cls: a class whose instances replace ``lax.dot_general``.
  """

  features: int
  use_bias: bool = True
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None
  kernel_init: Initializer = default_kernel_init
  bias_init: Initializer = initializers.zeros_init()
  promote_dtype: PromoteDtypeFn = promote_dtype
  dot_general: DotGeneralT | None = None
  dot_general_cls: Any = None

  @compact
  def __call__(self, inputs: Array) -> Array:
    inputs = jnp.asarray(inputs)
    if inputs.ndim == 0:  # no feature axis: the initializer would divide by fan_in = 0
      raise InputShapeError(layer_name(self), "at least 1 dim (..., features)", inputs.shape,
                            "give the input a feature axis, e.g. x[None] or x.reshape(-1, 1)")
    shape = (inputs.shape[-1], self.features)
    check_in_features(self, "kernel", shape, (0,), inputs.shape)
    kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    return linear_ops.dense(
      inputs, kernel, bias, dtype=self.dtype, precision=self.precision,
      dot_general=_dot_general(self.dot_general, self.dot_general_cls),
      promote_rule=from_varargs(self.promote_dtype), where=layer_name(self),
    )


class DenseGeneral(Module):
  """A linear map over several input axes to one or more output feature axes.

  Attributes:
    features: int or tuple of output feature sizes.
    axis: input axis or axes to contract.
    batch_dims: leading input axes the kernel is batched over (one kernel per index).
    use_bias, dtype, param_dtype, precision, kernel_init, bias_init, promote_dtype,
      dot_general, dot_general_cls: as in :class:`Dense`. Initializers see the kernel
      flattened to ``(batch * contracted, features)``.
  """

  features: int | Sequence[int]
  axis: int | Sequence[int] = -1
  batch_dims: Sequence[int] = ()
  use_bias: bool = True
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  kernel_init: Initializer = default_kernel_init
  bias_init: Initializer = initializers.zeros_init()
  precision: PrecisionLike = None
  promote_dtype: PromoteDtypeFn = promote_dtype
  dot_general: DotGeneralT | None = None
  dot_general_cls: Any = None

  @compact
  def __call__(self, inputs: Array) -> Array:
    inputs = jnp.asarray(inputs)
    features = linear_ops.canonicalize_axes(0, self.features)
    linear_ops.check_axes(inputs.shape, self.axis, None, layer_name(self))
    # Sorted, as Flax does: the kernel's contracted dims follow the input's order.
    axis = tuple(sorted(linear_ops.canonicalize_axes(inputs.ndim, self.axis)))
    batch_dims = linear_ops.canonicalize_axes(inputs.ndim, self.batch_dims)
    batch_shape = tuple(inputs.shape[a] for a in batch_dims)
    in_shape = tuple(inputs.shape[a] for a in axis)
    n_batch, n_in = len(batch_shape), len(in_shape)
    kernel_shape = batch_shape + in_shape + features
    check_in_features(self, "kernel", kernel_shape, range(n_batch, n_batch + n_in), inputs.shape)
    flat = (int(np.prod(batch_shape + in_shape)), int(np.prod(features)))
    kernel = self.param("kernel", _reshaped_init(self.kernel_init, flat), kernel_shape,
                        self.param_dtype)
    bias = None
    if self.use_bias:
      flat_bias = (int(np.prod(batch_shape + features)),)
      bias = self.param("bias", _reshaped_init(self.bias_init, flat_bias),
                        batch_shape + features, self.param_dtype)
    return linear_ops.dense_general(
      inputs, kernel, bias, axis=axis, batch_dims=batch_dims, dtype=self.dtype,
      precision=self.precision, dot_general=_dot_general(self.dot_general, self.dot_general_cls),
      promote_rule=from_varargs(self.promote_dtype), where=layer_name(self),
    )


class Einsum(Module):
  """``einsum(einsum_str, inputs, kernel) + bias`` with a kernel of the given ``shape``.

  The bias covers the kernel's dims that appear in the output (see
  :func:`flaxen.ops.linear.einsum_bias_shape`).

  Attributes:
    shape: the kernel shape.
    einsum_str: explicit two-operand subscripts ``'inputs,kernel->out'`` (``'...'`` allowed
      in each part); may instead be passed to ``__call__``.
    use_bias, dtype, param_dtype, precision, kernel_init, bias_init, promote_dtype: as in
      :class:`Dense`.
    preferred_element_type: the einsum's accumulation and result dtype.
  """

  shape: Sequence[int]
  einsum_str: str | None = None
  use_bias: bool = True
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None
  kernel_init: Initializer = default_kernel_init
  bias_init: Initializer = initializers.zeros_init()
  promote_dtype: PromoteDtypeFn = promote_dtype
  preferred_element_type: Dtype | None = None

  @compact
  def __call__(self, inputs: Array, einsum_str: str | None = None) -> Array:
    einsum_str = merge_param("einsum_str", self.einsum_str, einsum_str)
    where = layer_name(self)
    linear_ops.parse_einsum(einsum_str, jnp.shape(inputs), self.shape, where)
    kernel = self.param("kernel", self.kernel_init, tuple(self.shape), self.param_dtype)
    bias = None
    if self.use_bias:
      bias_shape = linear_ops.einsum_bias_shape(einsum_str, self.shape)
      bias = self.param("bias", self.bias_init, bias_shape, self.param_dtype)
    return linear_ops.einsum(
      einsum_str, inputs, kernel, bias, dtype=self.dtype, precision=self.precision,
      promote_rule=from_varargs(self.promote_dtype),
      preferred_element_type=self.preferred_element_type, where=where,
    )


class _ConvBase(Module):
  """Fields and param creation shared by Conv and ConvTranspose."""

  features: int
  kernel_size: int | Sequence[int]
  strides: int | Sequence[int] | None = 1
  padding: PaddingLike = "SAME"
  use_bias: bool = True
  mask: Array | None = None
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None
  kernel_init: Initializer = default_kernel_init
  bias_init: Initializer = initializers.zeros_init()

  def _kernel_size(self) -> tuple[int, ...]:
    # An int is one spatial dim, as in Flax.
    if isinstance(self.kernel_size, int | np.integer):
      return (int(self.kernel_size),)
    return tuple(self.kernel_size)

  def _params(self, inputs: Array, kernel_shape: tuple[int, ...], in_dim: int,
              kernel_size: tuple[int, ...]) -> tuple[Array, Array | None]:
    if inputs.ndim < len(kernel_size) + 1:
      raise InputShapeError(
        layer_name(self), f"at least {len(kernel_size) + 1} dims (spatial dims, then features)",
        inputs.shape, "add the missing spatial or feature dims, or use a smaller kernel_size",
      )
    check_in_features(self, "kernel", kernel_shape, (in_dim,), inputs.shape)
    kernel = self.param("kernel", self.kernel_init, kernel_shape, self.param_dtype)
    if self.mask is not None:
      kernel = kernel * self.mask
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    return kernel, bias


class Conv(_ConvBase):
  """An N-d convolution over channels-last inputs ``(*batch, *spatial, features)``.

  Attributes:
    features: number of output features.
    kernel_size: one size per spatial dim (a sequence; an int is an error, as in Flax).
    strides: an int or one per spatial dim.
    padding: 'SAME', 'VALID', 'CIRCULAR', 'CAUSAL', an int, or ints / pairs per dim.
    input_dilation: dilation of the input per spatial dim.
    kernel_dilation: dilation of the kernel per spatial dim.
    feature_group_count: number of feature groups (depthwise when equal to the inputs).
    use_bias: whether to add a bias.
    mask: multiplied into the kernel (e.g. for masked convolutions).
    dtype, param_dtype, precision, kernel_init, bias_init, promote_dtype: as in
      :class:`Dense`.
    conv_general_dilated: replaces ``lax.conv_general_dilated``.
    conv_general_dilated_cls: a class whose instances replace it.
  """

  input_dilation: int | Sequence[int] | None = 1
  kernel_dilation: int | Sequence[int] | None = 1
  feature_group_count: int = 1
  promote_dtype: PromoteDtypeFn = promote_dtype
  conv_general_dilated: ConvGeneralDilatedT | None = None
  conv_general_dilated_cls: Any = None
  shared_weights = True  # one kernel at every position (ConvLocal: one per position)

  @compact
  def __call__(self, inputs: Array) -> Array:
    kernel_size = self._kernel_size()
    inputs = jnp.asarray(inputs)
    in_features = inputs.shape[-1] // self.feature_group_count if inputs.ndim else 0
    kernel_shape = kernel_size + (in_features, self.features)
    kernel, bias = self._params(inputs, kernel_shape, len(kernel_size), kernel_size)
    conv_fn = lax.conv_general_dilated
    if self.conv_general_dilated_cls is not None:
      conv_fn = self.conv_general_dilated_cls()
    elif self.conv_general_dilated is not None:
      conv_fn = self.conv_general_dilated
    return conv_ops.conv(
      inputs, kernel, bias, strides=self.strides, padding=self.padding,
      input_dilation=self.input_dilation, kernel_dilation=self.kernel_dilation,
      feature_group_count=self.feature_group_count, dtype=self.dtype, precision=self.precision,
      conv_general_dilated=conv_fn, promote_rule=from_varargs(self.promote_dtype),
      where=layer_name(self),
    )


class ConvLocal(Conv):
  """A locally connected layer: like :class:`Conv`, but with separate (unshared) weights at
  every output position.

  Params: ``kernel`` of shape ``(*out_spatial, prod(kernel_size) * in, features)`` and
  ``bias`` of shape ``(*out_spatial, features)``; attributes as in :class:`Conv`
  (``feature_group_count`` must be 1, ``conv_general_dilated`` is not used).
  """

  shared_weights = False

  @compact
  def __call__(self, inputs: Array) -> Array:
    kernel_size = self._kernel_size()
    if self.feature_group_count != 1:
      raise NotImplementedError(f"{layer_name(self)}: feature_group_count must be 1.")
    inputs = jnp.asarray(inputs)
    if inputs.ndim < len(kernel_size) + 1:
      raise InputShapeError(
        layer_name(self), f"at least {len(kernel_size) + 1} dims (spatial dims, then features)",
        inputs.shape, "add the missing spatial or feature dims, or use a smaller kernel_size",
      )
    geometry = dict(strides=self.strides, padding=self.padding,
                    input_dilation=self.input_dilation, kernel_dilation=self.kernel_dilation)
    kernel_shape = conv_ops.conv_local_kernel_shape(inputs.shape, kernel_size, self.features,
                                                    **geometry)
    check_in_features(self, "kernel", kernel_shape, (len(kernel_shape) - 2,), inputs.shape)
    kernel = self.param("kernel", self.kernel_init, kernel_shape, self.param_dtype)
    if self.mask is not None:
      kernel = kernel * self.mask
    bias = None
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (*kernel_shape[:-2], self.features),
                        self.param_dtype)
    return conv_ops.conv_local(inputs, kernel, bias, kernel_size=kernel_size, dtype=self.dtype,
                               precision=self.precision,
                               promote_rule=from_varargs(self.promote_dtype), **geometry)


class ConvTranspose(_ConvBase):
  """A transposed convolution (upsampling) over channels-last inputs.

  Attributes:
    kernel_dilation: dilation of the kernel per spatial dim.
    transpose_kernel: flip the kernel and swap its in/out axes (kernel shape
      ``(*kernel_size, features, in)``), making this the gradient of a :class:`Conv`.
    preferred_element_type: the convolution's accumulation and result dtype.
    Others as in :class:`Conv`; ``strides`` defaults to ``None`` (1), ``padding`` 'CIRCULAR'
    wraps the output onto ``input_size * stride``.
  """

  strides: int | Sequence[int] | None = None
  kernel_dilation: int | Sequence[int] | None = None
  transpose_kernel: bool = False
  promote_dtype: PromoteDtypeFn = promote_dtype
  preferred_element_type: Dtype | None = None

  @compact
  def __call__(self, inputs: Array) -> Array:
    inputs = jnp.asarray(inputs)
    kernel_size = self._kernel_size()
    in_features = inputs.shape[-1] if inputs.ndim else 0
    if self.transpose_kernel:
      kernel_shape, in_dim = kernel_size + (self.features, in_features), len(kernel_size) + 1
    else:
      kernel_shape, in_dim = kernel_size + (in_features, self.features), len(kernel_size)
    kernel, bias = self._params(inputs, kernel_shape, in_dim, kernel_size)
    return conv_ops.conv_transpose(
      inputs, kernel, bias, strides=self.strides, padding=self.padding,
      kernel_dilation=self.kernel_dilation, transpose_kernel=self.transpose_kernel,
      dtype=self.dtype, precision=self.precision, promote_rule=from_varargs(self.promote_dtype),
      preferred_element_type=self.preferred_element_type, where=layer_name(self),
    )


class Embed(Module):
  """A table of ``num_embeddings`` vectors of size ``features``, looked up by integer ids.

  Attributes:
    num_embeddings: number of rows.
    features: size of each vector.
    dtype: dtype of the looked-up vectors (default: the table's).
    param_dtype: dtype of the table.
    embedding_init: initializer of the ``(num_embeddings, features)`` table.
    promote_dtype: as in :class:`Dense` (the lookup calls it with ``inexact=False``).
  """

  num_embeddings: int
  features: int
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  embedding_init: Initializer = default_embed_init
  promote_dtype: PromoteDtypeFn = promote_dtype

  def setup(self) -> None:
    self.embedding = self.param("embedding", self.embedding_init,
                                (self.num_embeddings, self.features), self.param_dtype)

  def __call__(self, inputs: Array) -> Array:
    """The embedding vectors of integer ``inputs``: shape ``inputs.shape + (features,)``."""
    return embed_ops.lookup(self.embedding, inputs, dtype=self.dtype,
                            promote_rule=from_varargs(self.promote_dtype), where=layer_name(self))

  def attend(self, query: Array) -> Array:
    """``query @ embedding.T``: logits over the table (for tied input/output embeddings)."""
    return embed_ops.attend(self.embedding, query, dtype=self.dtype,
                            promote_rule=from_varargs(self.promote_dtype))
