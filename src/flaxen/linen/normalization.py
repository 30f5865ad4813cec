"""Normalization Linen layers: BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm.

Params ``scale`` and ``bias`` have the shape of the input on the feature axes; BatchNorm
keeps running statistics ``mean`` and ``var`` in the ``batch_stats`` collection. The math
is :mod:`flaxen.ops.normalization`.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> x = jnp.ones((4, 3))
>>> variables = nn.BatchNorm(use_running_average=False).init(jax.random.key(0), x)
>>> jax.tree.map(jnp.shape, variables)
{'batch_stats': {'mean': (3,), 'var': (3,)}, 'params': {'bias': (3,), 'scale': (3,)}}
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from flaxen import initializers
from flaxen.errors.layers import InputShapeError
from flaxen.linen.module import Module, compact, merge_param
from flaxen.linen.param_checks import layer_name
from flaxen.ops import normalization as norm_ops
from flaxen.ops.linear import canonicalize_axes
from flaxen.typing import Array, Axes, Dtype, Initializer

__all__ = ["BatchNorm", "GroupNorm", "InstanceNorm", "LayerNorm", "RMSNorm"]


def _scale_bias(module: Any, shape: tuple[int, ...]) -> tuple[Array | None, Array | None]:
  """The module's ``scale`` and ``bias`` params (``None`` where unused)."""

  def param(name: str, used: bool, init: Initializer | None) -> Array | None:
    if not used:
      return None
    value = module.param(name, init, shape, module.param_dtype)
    # Without float32 reductions the affine params are applied in param_dtype.
    return value if module.force_float32_reductions else jnp.asarray(value, module.param_dtype)

  scale = param("scale", module.use_scale, module.scale_init)
  bias = param("bias", getattr(module, "use_bias", False), getattr(module, "bias_init", None))
  return scale, bias


class BatchNorm(Module):
  """Normalizes with batch statistics while training, running averages for evaluation.

  Attributes:
    use_running_average: normalize with the stored averages instead of batch statistics
      (may be given to ``__call__`` instead).
    axis: the feature axis or axes.
    momentum: decay of the running averages.
    epsilon: added to the variance.
    dtype: output dtype (default: inferred from input and params).
    param_dtype: dtype of ``scale`` and ``bias``.
    use_bias, use_scale: whether to learn ``bias`` / ``scale``.
    bias_init, scale_init: their initializers.
    axis_name: a mapped axis to average the batch statistics over (e.g. a ``pmap`` axis).
    axis_index_groups: device groups of ``axis_name`` to average within.
    use_fast_variance: one-pass ``E[x^2] - E[x]^2`` variance.
    force_float32_reductions: keep statistics and running averages in at least float32;
      when ``False``, they use ``dtype`` / ``param_dtype``.
  """

  use_running_average: bool | None = None
  axis: int = -1
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Initializer = initializers.zeros_init()
  scale_init: Initializer = initializers.ones_init()
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True
  force_float32_reductions: bool = True

  @compact
  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    """Normalizes ``x``; when training, updates ``batch_stats`` (which must be mutable).

    Args:
      x: the input.
      use_running_average: overrides the attribute of the same name.
      mask: boolean mask of the entries that count towards the statistics.
    """
    use_running_average = merge_param(
      "use_running_average", self.use_running_average, use_running_average)
    x = jnp.asarray(x)
    feature_axes = canonicalize_axes(x.ndim, self.axis)
    reduction_axes = tuple(a for a in range(x.ndim) if a not in feature_axes)
    feature_shape = tuple(x.shape[a] for a in feature_axes)
    stats_dtype = jnp.float32 if self.force_float32_reductions else self.param_dtype
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, stats_dtype),
                            feature_shape)
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, stats_dtype),
                           feature_shape)
    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
      if not self.force_float32_reductions:
        mean, var = jnp.asarray(mean, self.param_dtype), jnp.asarray(var, self.param_dtype)
    else:
      initializing = self.is_initializing()
      mean, var = norm_ops.compute_stats(
        x, reduction_axes, dtype=self.dtype,
        axis_name=None if initializing else self.axis_name,
        axis_index_groups=self.axis_index_groups, use_fast_variance=self.use_fast_variance,
        mask=mask, force_float32_reductions=self.force_float32_reductions,
      )
      if not initializing:  # needs mutable=["batch_stats"], as in Flax
        ra_mean.value = norm_ops.ema(ra_mean.value, mean, self.momentum)
        ra_var.value = norm_ops.ema(ra_var.value, var, self.momentum)
    scale, bias = _scale_bias(self, feature_shape)
    return norm_ops.batch_norm(x, mean, var, scale, bias, axis=feature_axes,
                               epsilon=self.epsilon, dtype=self.dtype)


class LayerNorm(Module):
  """Normalizes each example over ``reduction_axes`` (default: the last axis).

  Attributes:
    epsilon: added to the variance.
    dtype, param_dtype, use_bias, use_scale, bias_init, scale_init: as in :class:`BatchNorm`.
    reduction_axes: axes of the statistics.
    feature_axes: axes of ``scale`` and ``bias``.
    axis_name, axis_index_groups, use_fast_variance: as in :class:`BatchNorm`.
    force_float32_reductions: compute the statistics in at least float32; when ``False``,
      in ``dtype`` with ``scale`` and ``bias`` in ``param_dtype``.
  """

  epsilon: float = 1e-6
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Initializer = initializers.zeros_init()
  scale_init: Initializer = initializers.ones_init()
  reduction_axes: Axes = -1
  feature_axes: Axes = -1
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True
  force_float32_reductions: bool = True

  @compact
  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    x = jnp.asarray(x)
    features = tuple(x.shape[a] for a in canonicalize_axes(x.ndim, self.feature_axes))
    scale, bias = _scale_bias(self, features)
    return norm_ops.layer_norm(
      x, scale, bias, reduction_axes=self.reduction_axes, feature_axes=self.feature_axes,
      epsilon=self.epsilon, dtype=self.dtype, use_fast_variance=self.use_fast_variance,
      axis_name=self.axis_name, axis_index_groups=self.axis_index_groups, mask=mask,
      force_float32_reductions=self.force_float32_reductions,
    )


class RMSNorm(Module):
  """Divides by the root mean square over ``reduction_axes``, then scales (no centering).

  Attributes:
    epsilon, dtype, param_dtype, use_scale, scale_init, reduction_axes, feature_axes,
      axis_name, axis_index_groups, use_fast_variance, force_float32_reductions: as in
      :class:`LayerNorm`.
  """

  epsilon: float = 1e-6
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_scale: bool = True
  scale_init: Initializer = initializers.ones_init()
  reduction_axes: Axes = -1
  feature_axes: Axes = -1
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True
  force_float32_reductions: bool = True

  @compact
  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    x = jnp.asarray(x)
    features = tuple(x.shape[a] for a in canonicalize_axes(x.ndim, self.feature_axes))
    scale, _ = _scale_bias(self, features)
    return norm_ops.rms_norm(
      x, scale, reduction_axes=self.reduction_axes, feature_axes=self.feature_axes,
      epsilon=self.epsilon, dtype=self.dtype, axis_name=self.axis_name,
      axis_index_groups=self.axis_index_groups, mask=mask,
      force_float32_reductions=self.force_float32_reductions,
    )


class GroupNorm(Module):
  """Normalizes over groups of channels (the last axis) and the other non-batch axes.

  Attributes:
    num_groups: number of channel groups (default 32); or set ``group_size`` and
      ``num_groups=None``.
    group_size: channels per group.
    reduction_axes: axes of the statistics, ending with the channel axis; ``None`` means
      every axis but the first.
    epsilon, dtype, param_dtype, use_bias, use_scale, bias_init, scale_init, axis_name,
      axis_index_groups, use_fast_variance, force_float32_reductions: as in
      :class:`LayerNorm`.
  """

  num_groups: int | None = 32
  group_size: int | None = None
  epsilon: float = 1e-6
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Initializer = initializers.zeros_init()
  scale_init: Initializer = initializers.ones_init()
  reduction_axes: Axes | None = None
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True
  force_float32_reductions: bool = True

  @compact
  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    x = jnp.asarray(x)
    norm_ops.resolve_groups(x.shape[-1], self.num_groups, self.group_size)
    scale, bias = _scale_bias(self, (x.shape[-1],))
    return norm_ops.group_norm(
      x, scale, bias, num_groups=self.num_groups, group_size=self.group_size,
      reduction_axes=self.reduction_axes, epsilon=self.epsilon, dtype=self.dtype,
      use_fast_variance=self.use_fast_variance, axis_name=self.axis_name,
      axis_index_groups=self.axis_index_groups, mask=mask,
      force_float32_reductions=self.force_float32_reductions,
    )


class InstanceNorm(Module):
  """Normalizes each example and feature over all other axes (all but the first, the batch,
  and ``feature_axes``).

  Attributes:
    feature_axes: axes of ``scale`` and ``bias``; must not include axis 0.
    epsilon, dtype, param_dtype, use_bias, use_scale, bias_init, scale_init, axis_name,
      axis_index_groups, use_fast_variance, force_float32_reductions: as in
      :class:`LayerNorm`.
  """

  epsilon: float = 1e-6
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Initializer = initializers.zeros_init()
  scale_init: Initializer = initializers.ones_init()
  feature_axes: Axes = -1
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True
  force_float32_reductions: bool = True

  @compact
  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    x = jnp.asarray(x)
    feature_axes = canonicalize_axes(x.ndim, self.feature_axes)
    if 0 in feature_axes:
      raise InputShapeError(
        layer_name(self), f"feature_axes {feature_axes} without axis 0 (the batch axis)",
        x.shape, "set feature_axes to the channel axes, e.g. -1",
      )
    reduction_axes = tuple(a for a in range(1, x.ndim) if a not in feature_axes)
    scale, bias = _scale_bias(self, tuple(x.shape[a] for a in feature_axes))
    return norm_ops.layer_norm(
      x, scale, bias, reduction_axes=reduction_axes, feature_axes=feature_axes,
      epsilon=self.epsilon, dtype=self.dtype, use_fast_variance=self.use_fast_variance,
      axis_name=self.axis_name, axis_index_groups=self.axis_index_groups, mask=mask,
      force_float32_reductions=self.force_float32_reductions,
    )
