"""NNX ``WeightNorm`` and ``SpectralNorm``: a wrapped layer runs on reparametrized weights.

Each call splits the wrapped layer, normalizes the selected Params (the math is
:mod:`flaxen.ops.weight_norm`) and runs a copy merged from them, so gradients reach the
raw Params through the normalization; any other state the copy changes (batch statistics,
rng counts) is written back.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> layer = nnx.WeightNorm(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
>>> layer(jnp.ones((1, 2))).shape, layer.scales['kernel'].value.shape
((1, 3), (3,))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from flaxen import initializers
from flaxen.errors.layers import InputShapeError
from flaxen.nnx import filterlib, graphlib
from flaxen.nnx.module import Module
from flaxen.nnx.nn.dtypes import promote_dtype as default_promote_dtype
from flaxen.nnx.rnglib import Rngs
from flaxen.nnx.state import from_flat_state, to_flat_state
from flaxen.nnx.variables import BatchStat, Param
from flaxen.ops import weight_norm as ops
from flaxen.ops.linear import canonicalize_axes
from flaxen.typing import Array, Axes, Dtype, Initializer, PromoteDtypeFn

__all__ = ["SpectralNorm", "WeightNorm"]


_KERNELS = filterlib.PathContains("kernel")


def _name(path: tuple) -> str:
  return "/".join(str(p) for p in path)


def _run_on(layer: Module, selected_filter: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
  """Calls a copy of ``layer`` whose ``selected_filter`` Variables are ``fn(path, value)``;
  writes the copy's other state back into ``layer``."""
  graphdef, selected, rest = graphlib.split(layer, selected_filter, ...)
  flat = [(path, var.replace(fn(path, var.value))) for path, var in to_flat_state(selected)]
  copy = graphlib.merge(graphdef, from_flat_state(flat), rest)
  out = copy(*args, **kwargs)
  graphlib.update(layer, graphlib.state(copy, filterlib.Not(selected_filter)))
  return out


class WeightNorm(Module):
  """Runs ``layer_instance`` with each selected Param ``w`` replaced by
  ``scale * w / ||w||`` (norms over every axis but ``feature_axes``).

  Args:
    layer_instance: the wrapped layer.
    feature_axes: the axes with one norm (and scale) each; ``None``: one for the whole
      param.
    use_scale: learn a scale per feature (``self.scales[<param path>]``).
    scale_init: its initializer.
    epsilon: added under the square root of the norm.
    dtype: the dtype of the normalized params (default: promoted from param and scale).
    param_dtype: the dtype of the scales.
    variable_filter: selects the Params normalized (default: paths containing 'kernel').
    promote_dtype: a rule applied to ``(param, scale)`` before normalizing, when not the
      default.
    rngs: random streams (``params``, for the scales).
  """

  def __init__(self, layer_instance: Module, *, feature_axes: Axes | None = -1,
               use_scale: bool = True, scale_init: Initializer = initializers.ones,
               epsilon: float = 1e-12, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32,
               variable_filter: Any = _KERNELS,
               promote_dtype: PromoteDtypeFn = default_promote_dtype, rngs: Rngs):
    self.layer_instance = layer_instance
    self.feature_axes = feature_axes
    self.use_scale = use_scale
    self.epsilon = epsilon
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.variable_filter = variable_filter
    self.promote_dtype = promote_dtype
    scales = {}
    if use_scale:
      selected = graphlib.state(layer_instance, filterlib.All(Param, variable_filter))
      for path, var in to_flat_state(selected):
        shape = tuple(var.value.shape[a] for a in self._axes(var.value) or ())
        scales[_name(path)] = Param(scale_init(rngs.params(), shape, param_dtype))
    self.scales = scales

  def _axes(self, value: Array) -> tuple[int, ...] | None:
    if self.feature_axes is None:
      return None
    return canonicalize_axes(jnp.ndim(value), self.feature_axes)

  def _normalize(self, path: tuple, value: Array) -> Array:
    scale = self.scales[_name(path)].value if self.use_scale else None
    if self.promote_dtype is not default_promote_dtype:
      value, scale = self.promote_dtype((value, scale), dtype=self.dtype)
    return ops.weight_norm(value, scale, feature_axes=self._axes(value), epsilon=self.epsilon,
                           dtype=self.dtype)

  def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
    """Calls the wrapped layer with these arguments."""
    return _run_on(self.layer_instance, filterlib.All(Param, self.variable_filter),
                   self._normalize, x, *args, **kwargs)


class SpectralNorm(Module):
  """Runs ``layer_instance`` with each Param of 2 or more dims divided by its top singular
  value (estimated by power iteration; a param is seen as ``(-1, last_dim)``).

  The iteration's vector and estimate are the BatchStats ``self.u[<param path>]`` and
  ``self.sigma[<param path>]``; they advance on calls with ``update_stats``.

  Args:
    layer_instance: the wrapped layer.
    n_steps: power iterations per call.
    epsilon: added under the square roots of the normalizations.
    dtype: the dtype of the normalized params.
    param_dtype: the dtype of ``u`` and ``sigma``.
    error_on_non_matrix: raise for params of more than 2 dims instead of reshaping them.
    update_stats: the default of ``__call__``'s ``update_stats``.
    rngs: random streams (``params``, for the initial ``u``).

  Raises:
    InputShapeError: a Param has more than 2 dims and ``error_on_non_matrix`` is set.
  """

  def __init__(self, layer_instance: Module, *, n_steps: int = 1, epsilon: float = 1e-12,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               error_on_non_matrix: bool = False, update_stats: bool = True, rngs: Rngs):
    self.layer_instance = layer_instance
    self.n_steps = n_steps
    self.epsilon = epsilon
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.error_on_non_matrix = error_on_non_matrix
    self.update_stats = update_stats
    u, sigma = {}, {}
    for path, var in to_flat_state(graphlib.state(layer_instance, Param)):
      value = var.value
      if jnp.ndim(value) <= 1 or n_steps < 1:
        continue
      if jnp.ndim(value) > 2 and error_on_non_matrix:
        raise InputShapeError(f"SpectralNorm ({_name(path)})", "a 2-d param", value.shape,
                              "set error_on_non_matrix=False to see it as (-1, last_dim)")
      u[_name(path)] = BatchStat(jax.random.normal(rngs.params(), (1, value.shape[-1]),
                                                   param_dtype))
      sigma[_name(path)] = BatchStat(jnp.ones((), param_dtype))
    self.u = u
    self.sigma = sigma

  def __call__(self, x: Any, update_stats: bool | None = None) -> Any:
    """Calls the wrapped layer on ``x``; ``update_stats`` (default: the attribute) stores
    the new ``u`` and ``sigma``."""
    update = self.update_stats if update_stats is None else update_stats

    def normalize(path: tuple, value: Array) -> Array:
      name = _name(path)
      if name not in self.u:
        return value
      out, u, sigma = ops.spectral_normalize(value, self.u[name].value, n_steps=self.n_steps,
                                             epsilon=self.epsilon, dtype=self.dtype)
      if update:
        self.u[name].value, self.sigma[name].value = u, sigma
      return out

    return _run_on(self.layer_instance, Param, normalize, x)
