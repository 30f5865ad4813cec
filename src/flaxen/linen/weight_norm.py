"""Linen ``WeightNorm`` and ``SpectralNorm``: a wrapped layer sees reparametrized weights.

The wrapped layer keeps its own params; each call it runs on normalized copies of them
(:func:`flaxen.linen.map_variables`), the math being :mod:`flaxen.ops.weight_norm`.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> layer = nn.WeightNorm(nn.Dense(3))
>>> variables = layer.init(jax.random.key(0), jnp.ones((1, 2)))
>>> jax.tree.map(jnp.shape, variables['params'])
{'layer_instance': {'bias': (3,), 'kernel': (2, 3)}, 'layer_instance/kernel/scale': (3,)}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field
from typing import Any

import jax
import jax.numpy as jnp

from flaxen import initializers
from flaxen.errors.layers import InputShapeError
from flaxen.linen.module import Module, compact
from flaxen.linen.transforms.map_variables import map_variables
from flaxen.ops import weight_norm as ops
from flaxen.ops.linear import canonicalize_axes
from flaxen.typing import Array, Axes, Dtype, Initializer

__all__ = ["SpectralNorm", "WeightNorm"]


def _path_name(layer: Module, path: tuple) -> str:
  """``'<layer name>/<param path>'``, the prefix of the wrapper's own variables."""
  return "/".join([str(layer.name), *(str(getattr(k, "key", k)) for k in path[1:])])


def _run(wrapper: Module, fn: Any, mutable: bool, *args: Any, **kwargs: Any) -> Any:
  """Runs the wrapped layer on ``fn(path, param)`` of each of its params. The new params
  are computed here, in the wrapper (whose own variables ``fn`` may create); the transform
  only swaps them in. At init the layer first runs untransformed, creating its params, as
  Flax's ``map_variables(init=True)`` does."""
  layer = wrapper.layer_instance
  if wrapper.is_initializing():
    layer(*args, **kwargs)
  shown = jax.tree_util.tree_map_with_path(fn, {"params": layer.variables["params"]})
  mapped = map_variables(lambda m: m(*args, **kwargs), "params", mutable=mutable,
                         trans_in_fn=lambda vs: {**vs, **shown})
  return mapped(layer)


class WeightNorm(Module):
  """Runs ``layer_instance`` with each selected param ``w`` replaced by
  ``scale * w / ||w||`` (norms over every axis but ``feature_axes``).

  Attributes:
    layer_instance: the wrapped layer (e.g. ``nn.Dense(4)``).
    epsilon: added under the square root of the norm.
    dtype: the dtype of the normalized params (default: promoted from param and scale).
    param_dtype: the dtype of the scales.
    use_scale: learn a scale per feature (param ``'<layer>/<param path>/scale'``).
    scale_init: its initializer.
    feature_axes: the axes with one norm (and scale) each; ``None``: one for the whole
      param.
    variable_filter: names; a param is normalized when one of them occurs in its path
      ``'<layer>/<param path>'`` (default ``{'kernel'}``; empty: every param).
  """

  layer_instance: Module
  epsilon: float = 1e-12
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_scale: bool = True
  scale_init: Initializer = initializers.ones
  feature_axes: Axes | None = -1
  variable_filter: Iterable[str] | None = field(default_factory=lambda: {"kernel"})

  @compact
  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    """Calls the wrapped layer with its arguments."""
    return _run(self, self._normalize, False, *args, **kwargs)

  def _normalize(self, path: tuple, value: Array) -> Array:
    name = _path_name(self.layer_instance, path)
    if self.variable_filter and not any(f in name for f in self.variable_filter):
      return value
    value = jnp.asarray(value)
    axes = None if self.feature_axes is None else canonicalize_axes(value.ndim,
                                                                    self.feature_axes)
    scale = None
    if self.use_scale:
      shape = tuple(value.shape[a] for a in (axes or ()))
      scale = self.param(f"{name}/scale", self.scale_init, shape, self.param_dtype)
    return ops.weight_norm(value, scale, feature_axes=axes, epsilon=self.epsilon,
                           dtype=self.dtype)


class SpectralNorm(Module):
  """Runs ``layer_instance`` with each param of 2 or more dims divided by its top singular
  value (estimated by power iteration; a param is seen as ``(-1, last_dim)``).

  The iteration's vector ``u`` and the estimate ``sigma`` live in ``collection_name`` as
  ``'<layer>/<param path>/u'`` and ``'.../sigma'``; pass ``update_stats=True`` (with that
  collection mutable) to advance them.

  Attributes:
    layer_instance: the wrapped layer.
    n_steps: power iterations per call.
    epsilon: added under the square roots of the normalizations.
    dtype: the dtype of the normalized params.
    param_dtype: the dtype of ``u`` and ``sigma``.
    error_on_non_matrix: raise for params of more than 2 dims instead of reshaping them.
    collection_name: the collection of ``u`` and ``sigma``.
  """

  layer_instance: Module
  n_steps: int = 1
  epsilon: float = 1e-12
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  error_on_non_matrix: bool = False
  collection_name: str = "batch_stats"

  @compact
  def __call__(self, *args: Any, update_stats: bool, **kwargs: Any) -> Any:
    """Calls the wrapped layer; ``update_stats`` stores the new ``u`` and ``sigma``.

    Raises:
      InputShapeError: a param has more than 2 dims and ``error_on_non_matrix`` is set.
    """
    return _run(self, lambda p, v: self._normalize(p, v, update_stats), True, *args,
                **kwargs)

  def _normalize(self, path: tuple, value: Array, update_stats: bool) -> Array:
    value = jnp.asarray(value)
    if value.ndim <= 1 or self.n_steps < 1:
      return value
    name = _path_name(self.layer_instance, path)
    if value.ndim > 2 and self.error_on_non_matrix:
      raise InputShapeError(f"SpectralNorm ({name})", "a 2-d param", value.shape,
                            "set error_on_non_matrix=False to see it as (-1, last_dim)")
    key = None if self.has_variable(self.collection_name, f"{name}/u") else \
      self.make_rng("params")
    u = self.variable(self.collection_name, f"{name}/u", jax.random.normal, key,
                      (1, value.shape[-1]), self.param_dtype)
    sigma = self.variable(self.collection_name, f"{name}/sigma", jnp.ones, (),
                          self.param_dtype)
    out, new_u, new_sigma = ops.spectral_normalize(value, u.value, n_steps=self.n_steps,
                                                   epsilon=self.epsilon, dtype=self.dtype)
    if update_stats:
      u.value, sigma.value = new_u, new_sigma
    return out
