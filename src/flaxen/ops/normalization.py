"""Normalization math: statistics over axes (optionally across devices) and the affine
normalization of Layer-, RMS-, Group- and BatchNorm.

Statistics are computed in at least float32 (unless ``force_float32_reductions=False``), so
half-precision inputs do not lose the mean and variance. ``axis_name`` averages them across
a mapped axis (``pmap``, ``vmap``, ``shard_map``) with ``lax.pmean``.

>>> import jax.numpy as jnp
>>> x = jnp.array([[1., 2., 3.], [2., 2., 2.]])
>>> print(layer_norm(x).round(3))
[[-1.225  0.     1.225]
 [ 0.     0.     0.   ]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from flaxen.errors.layers import NumGroupsError
from flaxen.ops._lax import cast, inline_jit, is_inexact, mean_over, same_dtype
from flaxen.ops.dtypes import canonicalize_dtype
from flaxen.ops.linear import canonicalize_axes
from flaxen.typing import Array, Axes, Dtype

__all__ = [
  "batch_norm", "compute_stats", "ema", "group_norm", "layer_norm", "normalize",
  "resolve_groups", "rms_norm",
]


def _abs_sq(x: Array) -> Array:
  """``|x|^2``, real also for complex ``x``."""
  if jnp.iscomplexobj(x):
    return lax.real(lax.mul(x, lax.conj(x)))
  return lax.square(x)


def compute_stats(
  x: Array,
  axes: Axes,
  *,
  dtype: Dtype | None = None,
  axis_name: Any = None,
  axis_index_groups: Any = None,
  use_mean: bool = True,
  use_fast_variance: bool = True,
  mask: Array | None = None,
  force_float32_reductions: bool = True,
) -> tuple[Array, Array]:
  """Mean and (biased) variance of ``x`` over ``axes``, with those axes removed.

  Args:
    x: the input.
    axes: axes to reduce.
    dtype: dtype of the statistics, promoted to at least float32.
    axis_name: a mapped axis to also average over (``lax.pmean``), or ``None``.
    axis_index_groups: device groups of ``axis_name`` to average within.
    use_mean: when ``False`` (RMSNorm), the mean is zero and the variance is ``mean(x^2)``.
    use_fast_variance: ``E[x^2] - E[x]^2`` in one pass; otherwise ``E[(x - E[x])^2]``,
      which is slower but exact when the mean is large compared to the spread.
    mask: boolean array broadcastable to ``x``; only ``True`` entries are counted.
    force_float32_reductions: reduce in at least float32; when ``False``, in ``dtype``
      (default: the dtype of ``x``).

  Returns:
    ``(mean, var)``.
  """
  if dtype is None:
    dtype = x.dtype if isinstance(x, jax.Array) else jnp.result_type(x)
  if force_float32_reductions:
    dtype = jnp.promote_types(dtype, jnp.float32)
  x = cast(x, dtype)
  axes = canonicalize_axes(x.ndim, axes)
  if axis_index_groups is not None:  # hashable, for the jitted kernel
    axis_index_groups = tuple(tuple(g) for g in axis_index_groups)
  return _stats(x, mask, axes=axes, axis_name=axis_name, axis_index_groups=axis_index_groups,
                use_mean=use_mean, use_fast_variance=use_fast_variance)


@inline_jit("axes", "axis_name", "axis_index_groups", "use_mean", "use_fast_variance")
def _stats(x: Array, mask: Array | None, *, axes: tuple[int, ...], axis_name: Any,
           axis_index_groups: Any, use_mean: bool, use_fast_variance: bool
           ) -> tuple[Array, Array]:
  def mean(*values: Array) -> tuple[Array, ...]:
    if mask is None:
      means = tuple(mean_over(v, axes) for v in values)
    else:
      means = tuple(v.mean(axes, where=mask) for v in values)
    if axis_name is None:
      return means
    return lax.pmean(means, axis_name, axis_index_groups=axis_index_groups)

  # lax arithmetic on operands of one dtype, Python scalars converted as jnp converts them:
  # the same primitives as the jnp operators.
  if not use_mean:
    (mean_sq,) = mean(_abs_sq(x))
    return lax.full_like(mean_sq, 0), mean_sq
  if use_fast_variance:
    mu, mean_sq = mean(x, _abs_sq(x))
    return mu, lax.max(mean_sq.dtype.type(0), lax.sub(mean_sq, _abs_sq(mu)))
  (mu,) = mean(x)
  mu_b = lax.expand_dims(mu, sorted(axes))
  (var,) = mean(_abs_sq(lax.sub(x, mu_b) if mu.dtype == x.dtype else x - mu_b))
  return mu, var


def normalize(
  x: Array,
  mean: Array,
  var: Array,
  *,
  reduction_axes: Axes,
  feature_axes: Axes,
  scale: Array | None = None,
  bias: Array | None = None,
  epsilon: float = 1e-6,
  dtype: Dtype | None = None,
) -> Array:
  """``(x - mean) / sqrt(var + epsilon) * scale + bias``.

  Args:
    x: the input.
    mean, var: statistics with ``reduction_axes`` removed (as :func:`compute_stats` gives).
    reduction_axes: the axes the statistics were reduced over.
    feature_axes: the axes ``scale`` and ``bias`` run along; they have the shape of ``x``
      on those axes.
    scale, bias: ``None`` to skip.
    epsilon: added to the variance for stability.
    dtype: output dtype; ``None`` means the result type of ``x``, ``scale`` and ``bias``.
  """
  reduction_axes = canonicalize_axes(x.ndim, reduction_axes)
  feature_axes = canonicalize_axes(x.ndim, feature_axes)
  feature_shape = tuple(x.shape[a] if a in feature_axes else 1 for a in range(x.ndim))
  out_dtype = canonicalize_dtype(x, scale, bias, dtype=dtype)
  return _normalize(x, mean, var, scale, bias, reduction_axes=reduction_axes,
                    feature_shape=feature_shape, epsilon=epsilon, out_dtype=out_dtype)


@inline_jit("reduction_axes", "feature_shape", "epsilon", "out_dtype")
def _normalize(x: Array, mean: Array, var: Array, scale: Array | None, bias: Array | None, *,
               reduction_axes: tuple[int, ...], feature_shape: tuple[int, ...],
               epsilon: float, out_dtype: Any) -> Array:
  fast = type(epsilon) in (int, float) and same_dtype(
    x, mean, var, *(a for a in (scale, bias) if a is not None)) is not None
  if not fast:
    # Mixed dtypes (or an array epsilon): the jnp operators' promotion at each step.
    mean = jnp.expand_dims(mean, reduction_axes)
    var = jnp.expand_dims(var, reduction_axes)
    y = x - mean
    mul = lax.rsqrt(var + epsilon)
    if scale is not None:
      mul = mul * scale.reshape(feature_shape)
    y = y * mul
    if bias is not None:
      y = y + bias.reshape(feature_shape)
    return jnp.asarray(y, out_dtype)
  # One dtype: the same primitives as above, bound directly (size-1 dims broadcast in lax).
  axes = sorted(reduction_axes)
  mean = lax.expand_dims(mean, axes)
  var = lax.expand_dims(var, axes)
  y = lax.sub(x, mean)
  mul = lax.rsqrt(lax.add(var, var.dtype.type(epsilon)))
  if scale is not None:
    mul = lax.mul(mul, lax.reshape(scale, feature_shape))
  y = lax.mul(y, mul)
  if bias is not None:
    y = lax.add(y, lax.reshape(bias, feature_shape))
  return cast(y, out_dtype)


def layer_norm(
  x: Array,
  scale: Array | None = None,
  bias: Array | None = None,
  *,
  reduction_axes: Axes = -1,
  feature_axes: Axes = -1,
  epsilon: float = 1e-6,
  dtype: Dtype | None = None,
  use_fast_variance: bool = True,
  axis_name: Any = None,
  axis_index_groups: Any = None,
  mask: Array | None = None,
  force_float32_reductions: bool = True,
) -> Array:
  """Normalizes each example over ``reduction_axes`` (Ba et al., 2016)."""
  mean, var = compute_stats(
    x, reduction_axes, dtype=dtype, axis_name=axis_name, axis_index_groups=axis_index_groups,
    use_fast_variance=use_fast_variance, mask=mask,
    force_float32_reductions=force_float32_reductions,
  )
  return normalize(x, mean, var, reduction_axes=reduction_axes, feature_axes=feature_axes,
                   scale=scale, bias=bias, epsilon=epsilon, dtype=dtype)


def rms_norm(
  x: Array,
  scale: Array | None = None,
  *,
  reduction_axes: Axes = -1,
  feature_axes: Axes = -1,
  epsilon: float = 1e-6,
  dtype: Dtype | None = None,
  axis_name: Any = None,
  axis_index_groups: Any = None,
  mask: Array | None = None,
  force_float32_reductions: bool = True,
) -> Array:
  """Divides by the root mean square over ``reduction_axes``, with no centering.

  >>> rms_norm(jnp.array([3., 4.])).tolist()
  [0.849, 1.131]
  """
  mean, var = compute_stats(
    x, reduction_axes, dtype=dtype, axis_name=axis_name, axis_index_groups=axis_index_groups,
    use_mean=False, mask=mask, force_float32_reductions=force_float32_reductions,
  )
  return normalize(x, mean, var, reduction_axes=reduction_axes, feature_axes=feature_axes,
                   scale=scale, epsilon=epsilon, dtype=dtype)


def resolve_groups(channels: int, num_groups: int | None, group_size: int | None) -> int:
  """The number of groups GroupNorm splits ``channels`` into.

  Raises:
    NumGroupsError: both or neither of ``num_groups`` and ``group_size`` are given, or they
      do not divide ``channels``.

  >>> resolve_groups(8, None, 2)
  4
  """
  if (num_groups is None) == (group_size is None):
    raise NumGroupsError(channels, num_groups, group_size, "exactly one must be set")
  if group_size is not None:
    if group_size <= 0 or channels % group_size:
      raise NumGroupsError(channels, num_groups, group_size,
                           "group_size must divide the channel count")
    return channels // group_size
  assert num_groups is not None  # exactly one of the two is set (checked above)
  if num_groups <= 0 or channels % num_groups:
    raise NumGroupsError(channels, num_groups, group_size,
                         "num_groups must divide the channel count")
  return num_groups


def group_norm(
  x: Array,
  scale: Array | None = None,
  bias: Array | None = None,
  *,
  num_groups: int | None = 32,
  group_size: int | None = None,
  reduction_axes: Axes | None = None,
  epsilon: float = 1e-6,
  dtype: Dtype | None = None,
  use_fast_variance: bool = True,
  axis_name: Any = None,
  axis_index_groups: Any = None,
  mask: Array | None = None,
  force_float32_reductions: bool = True,
) -> Array:
  """Normalizes over groups of channels (the last axis) and ``reduction_axes``.

  Args:
    reduction_axes: axes to reduce, ending with the feature axis; ``None`` means every axis
      but the first (the batch).
    num_groups, group_size: how to split the channels; set exactly one.

  Other arguments are as in :func:`layer_norm`.

  >>> print(group_norm(jnp.arange(8.).reshape(1, 8), num_groups=2).round(2))
  [[-1.34 -0.45  0.45  1.34 -1.34 -0.45  0.45  1.34]]
  """
  channels = x.shape[-1]
  num_groups = resolve_groups(channels, num_groups, group_size)
  group_size = channels // num_groups
  if reduction_axes is None:
    reduction_axes = tuple(range(1, x.ndim))
  reduction_axes = canonicalize_axes(x.ndim, reduction_axes)
  outer = tuple(a for a in reduction_axes if a != x.ndim - 1)
  grouped = x.reshape(x.shape[:-1] + (num_groups, group_size))
  group_mask = None if mask is None else mask.reshape(grouped.shape)
  mean, var = compute_stats(
    grouped, outer + (x.ndim,), dtype=dtype, axis_name=axis_name,
    axis_index_groups=axis_index_groups, use_fast_variance=use_fast_variance, mask=group_mask,
    force_float32_reductions=force_float32_reductions,
  )
  mean = jnp.repeat(mean, group_size, axis=-1)
  var = jnp.repeat(var, group_size, axis=-1)
  return normalize(x, mean, var, reduction_axes=outer, feature_axes=-1, scale=scale,
                   bias=bias, epsilon=epsilon, dtype=dtype)


def batch_norm(
  x: Array,
  mean: Array,
  var: Array,
  scale: Array | None = None,
  bias: Array | None = None,
  *,
  axis: int | Sequence[int] = -1,
  epsilon: float = 1e-5,
  dtype: Dtype | None = None,
) -> Array:
  """Normalizes ``x`` with given per-feature statistics (batch or running averages).

  ``mean`` and ``var`` have the shape of ``x`` on the feature ``axis`` (all other axes
  reduced), as :func:`compute_stats` over the non-feature axes returns.
  """
  feature_axes = canonicalize_axes(x.ndim, axis)
  reduction_axes = tuple(a for a in range(x.ndim) if a not in feature_axes)
  return normalize(x, mean, var, reduction_axes=reduction_axes, feature_axes=feature_axes,
                   scale=scale, bias=bias, epsilon=epsilon, dtype=dtype)


def ema(average: Array, value: Array, momentum: float) -> Array:
  """The running average update ``momentum * average + (1 - momentum) * value``.

  >>> float(ema(jnp.array(1.), jnp.array(0.), 0.99))
  0.99
  """
  return _ema(average, value, momentum=momentum)


@inline_jit("momentum")
def _ema(average: Array, value: Array, *, momentum: float) -> Array:
  dtype = same_dtype(average, value)
  if type(momentum) in (int, float) and dtype is not None and is_inexact(dtype):
    m = dtype.type
    return lax.add(lax.mul(m(momentum), average), lax.mul(m(1.0 - momentum), value))
  return momentum * average + (1.0 - momentum) * value
