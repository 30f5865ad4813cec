"""Convolutions over channels-last inputs: padding rules, ``conv``, ``conv_local`` (unshared
weights) and ``conv_transpose``.

Inputs have shape ``(*batch, *spatial, features)``: any number of leading batch dims, or
none (an unbatched input). Kernels have shape ``(*kernel_size, in, out)``.

>>> import jax.numpy as jnp
>>> conv(jnp.ones((1, 5, 2)), jnp.ones((3, 2, 4)), padding='SAME').shape
(1, 5, 4)
>>> canonicalize_padding(1, 2)
[(1, 1), (1, 1)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from flaxen.errors.layers import (
  FeatureGroupError,
  FeatureSizeError,
  InputShapeError,
  InvalidPaddingError,
)
from flaxen.ops.dtypes import PromoteFn, promote
from flaxen.ops.linear import contraction_kwargs
from flaxen.typing import Array, ConvGeneralDilatedT, Dtype, LaxPadding, PaddingLike, PrecisionLike

__all__ = [
  "canonicalize_padding", "conv", "conv_local", "conv_local_kernel_shape", "conv_transpose",
  "normalize_tuple",
]

_NAMED = ("SAME", "SAME_LOWER", "VALID", "CIRCULAR", "REFLECT", "CAUSAL")
# Modes done by padding the input first (jnp.pad mode), then a VALID convolution.
_PAD_MODES = {"CIRCULAR": "wrap", "REFLECT": "reflect"}


def normalize_tuple(value: int | Sequence[int] | None, rank: int, name: str) -> tuple[int, ...]:
  """``value`` as one int per spatial dim: ``None`` means 1, an int is repeated.

  >>> normalize_tuple(2, 3, 'strides')
  (2, 2, 2)
  """
  if value is None:
    return (1,) * rank
  if isinstance(value, int | np.integer):
    return (int(value),) * rank
  value = tuple(int(v) for v in value)
  if len(value) != rank:
    raise InputShapeError(
      f"{name}={value}", f"{rank} value(s), one per spatial dim", (len(value),),
      f"pass an int or a sequence of {rank} ints",
    )
  return value


def canonicalize_padding(padding: PaddingLike, rank: int) -> LaxPadding:
  """A padding name (upper-cased), or a list of ``rank`` explicit ``(low, high)`` pairs.

  Raises:
    InvalidPaddingError: an unknown name, or a sequence of the wrong length or kind.
  """
  if isinstance(padding, str):
    if padding.upper() not in _NAMED:
      raise InvalidPaddingError(padding, rank, "unknown padding name")
    return padding.upper()
  if isinstance(padding, int | np.integer):
    return [(int(padding), int(padding))] * rank
  if not isinstance(padding, Sequence) or len(padding) != rank:
    raise InvalidPaddingError(padding, rank, f"expected {rank} entries")
  pairs = []
  for p in padding:
    if isinstance(p, int | np.integer):
      pairs.append((int(p), int(p)))
    elif isinstance(p, Sequence) and len(p) == 2:
      pairs.append((int(p[0]), int(p[1])))
    else:
      raise InvalidPaddingError(padding, rank, f"entry {p!r} is neither an int nor a pair")
  return pairs


def _dimension_numbers(ndim: int) -> lax.ConvDimensionNumbers:
  spatial = tuple(range(1, ndim - 1))
  return lax.ConvDimensionNumbers(
    lhs_spec=(0, ndim - 1, *spatial),
    rhs_spec=(ndim - 1, ndim - 2, *range(ndim - 2)),
    out_spec=(0, ndim - 1, *spatial),
  )


def _to_one_batch_dim(inputs: Array, rank: int, where: str) -> tuple[Array, tuple[int, ...]]:
  """Reshapes ``inputs`` to exactly one batch dim; returns the original batch shape."""
  n_batch = inputs.ndim - rank - 1
  if n_batch < 0:
    raise InputShapeError(
      where, f"at least {rank + 1} dims (spatial dims of a {rank}-d kernel, then features)",
      inputs.shape, "add the missing spatial or feature dims, or use a smaller kernel_size",
    )
  batch_shape = inputs.shape[:n_batch]
  return inputs.reshape((-1, *inputs.shape[n_batch:])), batch_shape


def _add_bias(y: Array, bias: Array | None) -> Array:
  if bias is None:
    return y
  return y + bias.reshape((1,) * (y.ndim - bias.ndim) + bias.shape)


def _prepare(x: Array, kernel_size: Sequence[int], strides: Any, padding: PaddingLike,
             input_dilation: Any, kernel_dilation: Any) -> tuple[Any, ...]:
  """Per-dim strides and dilations, and ``x`` padded for the 'CIRCULAR' / 'REFLECT' /
  'CAUSAL' modes (which become 'VALID'); named padding is resolved to pairs when lax needs them."""
  rank = len(kernel_size)
  strides = normalize_tuple(strides, rank, "strides")
  input_dilation = normalize_tuple(input_dilation, rank, "input_dilation")
  kernel_dilation = normalize_tuple(kernel_dilation, rank, "kernel_dilation")
  padding = canonicalize_padding(padding, rank)
  sizes = zip(kernel_size, kernel_dilation, strict=True)
  dilated_kernel = [(k - 1) * d + 1 for k, d in sizes]
  if isinstance(padding, str) and padding in _PAD_MODES:
    # Centred on the window (odd leftovers on the right), whatever the strides.
    pads = [((k - 1) // 2, k // 2) for k in dilated_kernel]
    x = jnp.pad(x, [(0, 0), *pads, (0, 0)], mode=_PAD_MODES[padding])
    padding = "VALID"
  elif padding == "CAUSAL":
    if rank != 1:
      raise InvalidPaddingError("CAUSAL", rank, "causal padding needs exactly 1 spatial dim")
    x = jnp.pad(x, [(0, 0), (dilated_kernel[0] - 1, 0), (0, 0)])
    padding = "VALID"
  if isinstance(padding, str) and any(d > 1 for d in input_dilation):
    # lax accepts only explicit pads with input dilation: resolve the name on the dilated input.
    dilated_in = [(n - 1) * d + 1 for n, d in zip(x.shape[1:-1], input_dilation, strict=True)]
    padding = lax.padtype_to_pads(dilated_in, dilated_kernel, strides, padding)
  return strides, input_dilation, kernel_dilation, padding, x


def conv(
  inputs: Array,
  kernel: Array,
  bias: Array | None = None,
  *,
  strides: int | Sequence[int] | None = 1,
  padding: PaddingLike = "SAME",
  input_dilation: int | Sequence[int] | None = 1,
  kernel_dilation: int | Sequence[int] | None = 1,
  feature_group_count: int = 1,
  dtype: Dtype | None = None,
  precision: PrecisionLike = None,
  conv_general_dilated: ConvGeneralDilatedT = lax.conv_general_dilated,
  promote_rule: PromoteFn | None = None,
  preferred_element_type: Dtype | None = None,
  out_sharding: Any = None,
  where: str = "Conv",
) -> Array:
  """An N-d convolution (cross-correlation, as in ``lax``) of channels-last ``inputs``.

  Args:
    inputs: ``(*batch, *spatial, in_features)``; no batch dims means an unbatched input.
    kernel: ``(*kernel_size, in_features // feature_group_count, out_features)``.
    bias: ``None`` or ``(out_features,)`` (or any shape broadcastable from the right).
    strides: step per spatial dim.
    padding: 'SAME', 'VALID', 'CIRCULAR' (periodic), 'REFLECT' (mirrored at the edges,
      without repeating them), 'CAUSAL' (1-d only: all padding on the left), an int, or one
      int or ``(low, high)`` pair per spatial dim. 'CIRCULAR' and 'REFLECT' pad
      ``((k - 1) // 2, k // 2)`` for a dilated kernel of size ``k``, whatever the strides.
    input_dilation: dilation of the input (a transposed convolution when > 1).
    kernel_dilation: dilation of the kernel (atrous convolution).
    feature_group_count: split in/out features into this many independent groups.
    dtype: computation dtype; ``None`` means the result type of the arguments.
    precision: ``lax`` precision.
    conv_general_dilated: the convolution function, with ``lax``'s signature.
    promote_rule, preferred_element_type, out_sharding: as in
      :func:`flaxen.ops.linear.dense`.
    where: the layer named in error messages.
  """
  inputs = jnp.asarray(inputs)
  rank = kernel.ndim - 2
  x, batch_shape = _to_one_batch_dim(inputs, rank, where)
  in_features = x.shape[-1]
  if in_features % feature_group_count:
    raise FeatureGroupError(where, "the input feature count", in_features, feature_group_count)
  if kernel.shape[-1] % feature_group_count:
    raise FeatureGroupError(where, "the output feature count", kernel.shape[-1],
                            feature_group_count)
  if in_features // feature_group_count != kernel.shape[-2]:
    raise FeatureSizeError(where, "kernel", kernel.shape[-2] * feature_group_count, in_features,
                           inputs.shape)
  strides, input_dilation, kernel_dilation, padding, x = _prepare(
    x, kernel.shape[:rank], strides, padding, input_dilation, kernel_dilation)
  x, kernel, bias = promote((x, kernel, bias), dtype=dtype, rule=promote_rule)
  y = conv_general_dilated(
    x, kernel, strides, padding,
    lhs_dilation=input_dilation, rhs_dilation=kernel_dilation,
    dimension_numbers=_dimension_numbers(x.ndim), feature_group_count=feature_group_count,
    precision=precision, **contraction_kwargs(preferred_element_type, out_sharding),
  )
  y = _add_bias(y, bias)
  return y.reshape(batch_shape + y.shape[1:])


def conv_local_kernel_shape(
  input_shape: Sequence[int],
  kernel_size: Sequence[int],
  features: int,
  *,
  strides: int | Sequence[int] | None = 1,
  padding: PaddingLike = "SAME",
  input_dilation: int | Sequence[int] | None = 1,
  kernel_dilation: int | Sequence[int] | None = 1,
) -> tuple[int, ...]:
  """The kernel shape of :func:`conv_local`: one ``(prod(kernel_size) * in, features)``
  matrix per output position, ``(*out_spatial, prod(kernel_size) * in, features)``.

  >>> conv_local_kernel_shape((1, 5, 2), (3,), 4, padding='VALID')
  (3, 6, 4)
  """
  rank = len(kernel_size)
  in_features = input_shape[-1]
  dummy = jax.ShapeDtypeStruct((1, *input_shape[len(input_shape) - rank - 1:]), jnp.float32)
  out = jax.eval_shape(
    lambda x: conv(x, jnp.zeros((*kernel_size, in_features, 1)), strides=strides,
                   padding=padding, input_dilation=input_dilation,
                   kernel_dilation=kernel_dilation),
    dummy,
  )
  return (*out.shape[1:-1], int(np.prod(kernel_size)) * in_features, features)


def conv_local(
  inputs: Array,
  kernel: Array,
  bias: Array | None = None,
  *,
  kernel_size: Sequence[int],
  strides: int | Sequence[int] | None = 1,
  padding: PaddingLike = "SAME",
  input_dilation: int | Sequence[int] | None = 1,
  kernel_dilation: int | Sequence[int] | None = 1,
  dtype: Dtype | None = None,
  precision: PrecisionLike = None,
  promote_rule: PromoteFn | None = None,
) -> Array:
  """A locally connected layer: a convolution with a separate kernel at every output position.

  Args:
    inputs: ``(*batch, *spatial, in_features)``.
    kernel: shape :func:`conv_local_kernel_shape`; its input axis runs over input
      features (outer) then window positions (inner).
    bias: ``None``, ``(out_features,)`` or ``(*out_spatial, out_features)``.
    kernel_size: the window size per spatial dim.
    Others as in :func:`conv`.
  """
  inputs = jnp.asarray(inputs)
  rank = len(kernel_size)
  x, batch_shape = _to_one_batch_dim(inputs, rank, "ConvLocal")
  strides, input_dilation, kernel_dilation, padding, x = _prepare(
    x, kernel_size, strides, padding, input_dilation, kernel_dilation)
  x, kernel, bias = promote((x, kernel, bias), dtype=dtype, rule=promote_rule)
  y = lax.conv_general_dilated_local(
    x, kernel, strides, padding, kernel_size, lhs_dilation=input_dilation,
    rhs_dilation=kernel_dilation, dimension_numbers=_dimension_numbers(x.ndim),
    precision=precision,
  )
  y = _add_bias(y, bias)
  return y.reshape(batch_shape + y.shape[1:])


def _wrap_periodic(y: Array, periods: Sequence[int], transpose_kernel: bool) -> Array:
  """Folds a full transposed-convolution output onto the circular output of size ``periods``.

  The full output is padded so that the input's origin sits at a whole number of periods,
  then every spatial dim is summed modulo its period.
  """
  pads = []
  for size, period in zip(y.shape[1:-1], periods, strict=True):
    extra = -(size - period) % (2 * period)
    # Odd leftovers go left for a plain kernel, right for a transposed one (mirroring conv).
    low = extra // 2 if transpose_kernel else (extra + 1) // 2
    pads.append((low, extra - low))
  y = jnp.pad(y, [(0, 0), *pads, (0, 0)])
  for i, period in enumerate(periods, start=1):
    y = y.reshape(y.shape[:i] + (-1, period) + y.shape[i + 1:]).sum(axis=i)
  return y


def conv_transpose(
  inputs: Array,
  kernel: Array,
  bias: Array | None = None,
  *,
  strides: int | Sequence[int] | None = 1,
  padding: PaddingLike = "SAME",
  kernel_dilation: int | Sequence[int] | None = 1,
  transpose_kernel: bool = False,
  dtype: Dtype | None = None,
  precision: PrecisionLike = None,
  promote_rule: PromoteFn | None = None,
  preferred_element_type: Dtype | None = None,
  where: str = "ConvTranspose",
) -> Array:
  """A transposed convolution (``lax.conv_transpose``) of channels-last ``inputs``.

  Args:
    inputs: ``(*batch, *spatial, in_features)``; no batch dims means an unbatched input.
    kernel: ``(*kernel_size, in_features, out_features)``, or
      ``(*kernel_size, out_features, in_features)`` with ``transpose_kernel``.
    bias: ``None`` or ``(out_features,)``.
    strides: upsampling step per spatial dim.
    padding: as :func:`conv`; 'CIRCULAR' wraps the output periodically onto
      ``input_size * stride`` per spatial dim.
    kernel_dilation: dilation of the kernel.
    transpose_kernel: flip the kernel spatially and swap its in/out axes, so that the same
      kernel as a :func:`conv` computes that convolution's gradient.
    dtype: computation dtype; ``None`` means the result type of the arguments.
    precision: ``lax`` precision.
    promote_rule, preferred_element_type: as in :func:`flaxen.ops.linear.dense`.
    where: the layer named in error messages.

  >>> conv_transpose(jnp.ones((4, 2)), jnp.ones((3, 2, 1)), strides=2).shape
  (8, 1)
  """
  inputs = jnp.asarray(inputs)
  rank = kernel.ndim - 2
  x, batch_shape = _to_one_batch_dim(inputs, rank, where)
  kernel_in = kernel.shape[-1] if transpose_kernel else kernel.shape[-2]
  if x.shape[-1] != kernel_in:
    raise FeatureSizeError(where, "kernel", kernel_in, x.shape[-1], inputs.shape)
  strides = normalize_tuple(strides, rank, "strides")
  kernel_dilation = normalize_tuple(kernel_dilation, rank, "kernel_dilation")
  padding = canonicalize_padding(padding, rank)
  if padding in ("CAUSAL", "REFLECT"):
    raise InvalidPaddingError(padding, rank, f"{padding} padding is only supported by conv")
  lax_padding = "VALID" if padding == "CIRCULAR" else padding
  x, kernel, bias = promote((x, kernel, bias), dtype=dtype, rule=promote_rule)
  y = lax.conv_transpose(
    x, kernel, strides, lax_padding, rhs_dilation=kernel_dilation,
    transpose_kernel=transpose_kernel, precision=precision,
    **contraction_kwargs(preferred_element_type, None),
  )
  if padding == "CIRCULAR":
    periods = [n * s for n, s in zip(x.shape[1:-1], strides, strict=True)]
    y = _wrap_periodic(y, periods, transpose_kernel)
  y = _add_bias(y, bias)
  return y.reshape(batch_shape + y.shape[1:])
