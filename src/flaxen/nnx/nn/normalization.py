"""Normalization NNX layers: BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm.

Params ``scale`` and ``bias`` have shape ``(num_features,)``; BatchNorm keeps its running
statistics in the BatchStats ``mean`` and ``var``. The math is
:mod:`flaxen.ops.normalization`.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> bn = nnx.BatchNorm(3, rngs=nnx.Rngs(0))
>>> y = bn(jnp.arange(6.).reshape(2, 3))          # training: batch statistics
>>> bn.mean.value.round(3).tolist()
[0.015, 0.025, 0.035]
>>> _ = bn.eval()(jnp.ones((2, 3)))               # evaluation: running averages
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flaxen import initializers
from flaxen.errors.layers import InputShapeError
from flaxen.nnx.module import Module
from flaxen.nnx.nn.defaults import NO_METADATA, rule_of
from flaxen.nnx.nn.dtypes import promote_dtype as default_promote_dtype
from flaxen.nnx.rnglib import Rngs
from flaxen.nnx.variables import BatchStat, Param
from flaxen.ops import normalization as norm_ops
from flaxen.ops.linear import canonicalize_axes
from flaxen.typing import Axes, Dtype, Initializer, PromoteDtypeFn

__all__ = ["BatchNorm", "GroupNorm", "InstanceNorm", "LayerNorm", "RMSNorm"]


class _Norm(Module):
  """The attributes and the affine params every normalization layer has."""

  def _setup(self, num_features: int, *, epsilon: float, dtype: Dtype | None,
             param_dtype: Dtype, use_bias: bool, use_scale: bool, bias_init: Initializer,
             scale_init: Initializer, axis_name: str | None, axis_index_groups: Any,
             use_fast_variance: bool, promote_dtype: PromoteDtypeFn, rngs: Rngs,
             scale_metadata: Mapping[str, Any], bias_metadata: Mapping[str, Any]) -> None:
    shape = (num_features,)
    self.scale = (Param(scale_init(rngs.params(), shape, param_dtype), **scale_metadata)
                  if use_scale else None)
    self.bias = (Param(bias_init(rngs.params(), shape, param_dtype), **bias_metadata)
                 if use_bias else None)
    self.num_features = num_features
    self.epsilon = epsilon
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.use_bias = use_bias
    self.use_scale = use_scale
    self.axis_name = axis_name
    self.axis_index_groups = axis_index_groups
    self.use_fast_variance = use_fast_variance
    self.promote_dtype = promote_dtype

  def _affine(self, x: jax.Array) -> tuple[Any, jax.Array | None, jax.Array | None]:
    """``x``, ``scale`` and ``bias``, through the layer's ``promote_dtype`` when it is not
    the default (the default promotion happens inside the ops)."""
    scale = None if self.scale is None else self.scale.value
    bias = None if self.bias is None else self.bias.value
    rule = rule_of(self.promote_dtype)
    if rule is None:
      return x, scale, bias
    x, scale, bias = rule((x, scale, bias), dtype=self.dtype)
    return x, scale, bias


_zeros = initializers.zeros_init()
_ones = initializers.ones_init()


class BatchNorm(_Norm):
  """Normalizes with batch statistics while training, running averages for evaluation.

  Args:
    num_features: size of the feature axis.
    use_running_average: normalize with the stored averages (flipped by ``model.eval()`` /
      ``model.train()``; may be overridden per call).
    axis: the feature axis.
    momentum: decay of the running averages.
    epsilon: added to the variance.
    dtype: output dtype (default: inferred from input and params).
    param_dtype: dtype of ``scale`` and ``bias``.
    use_bias, use_scale: whether to learn ``bias`` / ``scale``.
    bias_init, scale_init: their initializers.
    axis_name: a mapped axis to average the batch statistics over.
    axis_index_groups: device groups of ``axis_name`` to average within.
    use_fast_variance: one-pass ``E[x^2] - E[x]^2`` variance.
    promote_dtype: a dtype promotion rule applied to ``(x, scale, bias)`` before
      normalizing, called as ``promote_dtype((x, scale, bias), dtype=dtype)`` (the default
      leaves it to the ops, as :func:`flaxen.nnx.nn.dtypes.promote_dtype` would).
    rngs: random streams (``params``).
    scale_metadata, bias_metadata: metadata of the Params (e.g. ``sharding``).
  """

  def __init__(self, num_features: int, *, use_running_average: bool = False, axis: int = -1,
               momentum: float = 0.99, epsilon: float = 1e-5, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               bias_init: Initializer = _zeros, scale_init: Initializer = _ones,
               axis_name: str | None = None, axis_index_groups: Any = None,
               use_fast_variance: bool = True,
               promote_dtype: PromoteDtypeFn = default_promote_dtype, rngs: Rngs,
               scale_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    self.mean = BatchStat(jnp.zeros((num_features,), jnp.float32))
    self.var = BatchStat(jnp.ones((num_features,), jnp.float32))
    self._setup(num_features, epsilon=epsilon, dtype=dtype, param_dtype=param_dtype,
                use_bias=use_bias, use_scale=use_scale, bias_init=bias_init,
                scale_init=scale_init, axis_name=axis_name, axis_index_groups=axis_index_groups,
                use_fast_variance=use_fast_variance, promote_dtype=promote_dtype, rngs=rngs,
                scale_metadata=scale_metadata,
                bias_metadata=bias_metadata)
    self.use_running_average = use_running_average
    self.axis = axis
    self.momentum = momentum

  def set_view(self, use_running_average: bool | None = None, **kwargs: Any) -> dict[str, Any]:
    """For ``nnx.view``: sets ``use_running_average`` when given; returns the other
    arguments.

    Args:
      use_running_average: normalize with the stored averages.
    """
    if use_running_average is not None:
      self.use_running_average = use_running_average
    return kwargs

  def __call__(self, x: jax.Array, use_running_average: bool | None = None, *,
               mask: jax.Array | None = None) -> jax.Array:
    """Normalizes ``x``; when training, also updates ``mean`` and ``var``.

    Args:
      x: the input.
      use_running_average: overrides the attribute of the same name.
      mask: boolean mask of the entries that count towards the statistics.
    """
    if use_running_average is None:
      use_running_average = self.use_running_average
    x = jnp.asarray(x)
    feature_axes = canonicalize_axes(x.ndim, self.axis)
    if use_running_average:
      mean, var = self.mean.value, self.var.value
    else:
      reduction_axes = tuple(a for a in range(x.ndim) if a not in feature_axes)
      mean, var = norm_ops.compute_stats(
        x, reduction_axes, dtype=self.dtype, axis_name=self.axis_name,
        axis_index_groups=self.axis_index_groups, use_fast_variance=self.use_fast_variance,
        mask=mask,
      )
      self.mean.value = norm_ops.ema(self.mean.value, mean, self.momentum)
      self.var.value = norm_ops.ema(self.var.value, var, self.momentum)
    x, scale, bias = self._affine(x)
    return norm_ops.batch_norm(x, mean, var, scale, bias, axis=feature_axes,
                               epsilon=self.epsilon, dtype=self.dtype)


class LayerNorm(_Norm):
  """Normalizes each example over ``reduction_axes`` (default: the last axis).

  Args:
    num_features: size of the feature axes (the shape of ``scale`` and ``bias``).
    epsilon: added to the variance.
    reduction_axes: axes of the statistics.
    feature_axes: axes ``scale`` and ``bias`` run along.
    dtype, param_dtype, use_bias, use_scale, bias_init, scale_init, axis_name,
      axis_index_groups, use_fast_variance, rngs, scale_metadata, bias_metadata: as in
      :class:`BatchNorm`.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> nnx.LayerNorm(2, rngs=nnx.Rngs(0))(jnp.array([1., 3.])).round(3).tolist()
  [-1.0, 1.0]
  """

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               bias_init: Initializer = _zeros, scale_init: Initializer = _ones,
               reduction_axes: Axes = -1, feature_axes: Axes = -1,
               axis_name: str | None = None, axis_index_groups: Any = None,
               use_fast_variance: bool = True,
               promote_dtype: PromoteDtypeFn = default_promote_dtype, rngs: Rngs,
               scale_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    self._setup(num_features, epsilon=epsilon, dtype=dtype, param_dtype=param_dtype,
                use_bias=use_bias, use_scale=use_scale, bias_init=bias_init,
                scale_init=scale_init, axis_name=axis_name, axis_index_groups=axis_index_groups,
                use_fast_variance=use_fast_variance, promote_dtype=promote_dtype, rngs=rngs,
                scale_metadata=scale_metadata,
                bias_metadata=bias_metadata)
    self.reduction_axes = reduction_axes
    self.feature_axes = feature_axes

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    x, scale, bias = self._affine(x)
    return norm_ops.layer_norm(
      x, scale, bias, reduction_axes=self.reduction_axes, feature_axes=self.feature_axes,
      epsilon=self.epsilon, dtype=self.dtype, use_fast_variance=self.use_fast_variance,
      axis_name=self.axis_name, axis_index_groups=self.axis_index_groups, mask=mask,
    )


class RMSNorm(_Norm):
  """Divides by the root mean square over ``reduction_axes``, then scales (no centering).

  Args:
    num_features, epsilon, dtype, param_dtype, use_scale, scale_init, reduction_axes,
      feature_axes, axis_name, axis_index_groups, use_fast_variance, rngs: as in
      :class:`LayerNorm`.
  """

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, use_scale: bool = True,
               scale_init: Initializer = _ones, reduction_axes: Axes = -1,
               feature_axes: Axes = -1, axis_name: str | None = None,
               axis_index_groups: Any = None, use_fast_variance: bool = True,
               promote_dtype: PromoteDtypeFn = default_promote_dtype, rngs: Rngs,
               scale_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    self._setup(num_features, epsilon=epsilon, dtype=dtype, param_dtype=param_dtype,
                use_bias=False, use_scale=use_scale, bias_init=_zeros, scale_init=scale_init,
                axis_name=axis_name, axis_index_groups=axis_index_groups,
                use_fast_variance=use_fast_variance, promote_dtype=promote_dtype, rngs=rngs,
                scale_metadata=scale_metadata,
                bias_metadata=bias_metadata)
    self.reduction_axes = reduction_axes
    self.feature_axes = feature_axes

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    x, scale, _ = self._affine(x)
    return norm_ops.rms_norm(
      x, scale, reduction_axes=self.reduction_axes, feature_axes=self.feature_axes,
      epsilon=self.epsilon, dtype=self.dtype, axis_name=self.axis_name,
      axis_index_groups=self.axis_index_groups, mask=mask,
    )


class GroupNorm(_Norm):
  """Normalizes over groups of channels (the last axis) and the other non-batch axes.

  Args:
    num_features: number of channels.
    num_groups: number of channel groups (default 32); or set ``group_size`` and
      ``num_groups=None``.
    group_size: channels per group.
    reduction_axes: axes of the statistics, ending with the channel axis; ``None`` means
      every axis but the first.
    epsilon, dtype, param_dtype, use_bias, use_scale, bias_init, scale_init, axis_name,
      axis_index_groups, use_fast_variance, rngs: as in :class:`LayerNorm`.

  Raises:
    NumGroupsError: the groups do not divide ``num_features``.
  """

  def __init__(self, num_features: int, num_groups: int | None = 32,
               group_size: int | None = None, *, epsilon: float = 1e-6,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               use_bias: bool = True, use_scale: bool = True, bias_init: Initializer = _zeros,
               scale_init: Initializer = _ones, reduction_axes: Axes | None = None,
               axis_name: str | None = None, axis_index_groups: Any = None,
               use_fast_variance: bool = True,
               promote_dtype: PromoteDtypeFn = default_promote_dtype, rngs: Rngs,
               scale_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    self.num_groups = norm_ops.resolve_groups(num_features, num_groups, group_size)
    self.group_size = num_features // self.num_groups
    self._setup(num_features, epsilon=epsilon, dtype=dtype, param_dtype=param_dtype,
                use_bias=use_bias, use_scale=use_scale, bias_init=bias_init,
                scale_init=scale_init, axis_name=axis_name, axis_index_groups=axis_index_groups,
                use_fast_variance=use_fast_variance, promote_dtype=promote_dtype, rngs=rngs,
                scale_metadata=scale_metadata,
                bias_metadata=bias_metadata)
    self.reduction_axes = reduction_axes

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    x, scale, bias = self._affine(x)
    return norm_ops.group_norm(
      x, scale, bias, num_groups=self.num_groups, reduction_axes=self.reduction_axes,
      epsilon=self.epsilon, dtype=self.dtype, use_fast_variance=self.use_fast_variance,
      axis_name=self.axis_name, axis_index_groups=self.axis_index_groups, mask=mask,
    )


class InstanceNorm(_Norm):
  """Normalizes each example and feature over the other axes (all but the first, the batch,
  and ``feature_axes``).

  Args:
    num_features, epsilon, dtype, param_dtype, use_bias, use_scale, bias_init, scale_init,
      feature_axes, axis_name, axis_index_groups, use_fast_variance, rngs: as in
      :class:`LayerNorm`.
  """

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               bias_init: Initializer = _zeros, scale_init: Initializer = _ones,
               feature_axes: Axes = -1, axis_name: str | None = None,
               axis_index_groups: Any = None, use_fast_variance: bool = True,
               promote_dtype: PromoteDtypeFn = default_promote_dtype, rngs: Rngs,
               scale_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    self._setup(num_features, epsilon=epsilon, dtype=dtype, param_dtype=param_dtype,
                use_bias=use_bias, use_scale=use_scale, bias_init=bias_init,
                scale_init=scale_init, axis_name=axis_name, axis_index_groups=axis_index_groups,
                use_fast_variance=use_fast_variance, promote_dtype=promote_dtype, rngs=rngs,
                scale_metadata=scale_metadata,
                bias_metadata=bias_metadata)
    self.feature_axes = feature_axes

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    x = jnp.asarray(x)
    feature_axes = canonicalize_axes(x.ndim, self.feature_axes)
    if 0 in feature_axes:
      raise InputShapeError(
        type(self).__name__, f"feature_axes {feature_axes} without axis 0 (the batch axis)",
        x.shape, "set feature_axes to the channel axes, e.g. -1",
      )
    reduction_axes = tuple(a for a in range(1, x.ndim) if a not in feature_axes)
    x, scale, bias = self._affine(x)
    return norm_ops.layer_norm(
      x, scale, bias, reduction_axes=reduction_axes, feature_axes=feature_axes,
      epsilon=self.epsilon, dtype=self.dtype, use_fast_variance=self.use_fast_variance,
      axis_name=self.axis_name, axis_index_groups=self.axis_index_groups, mask=mask,
    )
