"""Sampling methods of ``RngStream`` and ``Rngs``: ``rngs.normal(shape)`` and the like.

Each ``jax.random`` sampler becomes a method that draws the stream's next key and calls
the sampler with it; each ``jax.nn.initializers`` factory becomes a method returning an
initializer ``(shape, dtype) -> array`` that draws a key per call. On ``Rngs`` they use
the ``default`` stream. A stream named like one of these methods is reached with
``rngs['normal']``.

>>> import jax
>>> from flaxen import nnx
>>> x = nnx.Rngs(0).normal((2,))
>>> bool((x == jax.random.normal(jax.random.fold_in(jax.random.key(0), 0), (2,))).all())
True
"""

from __future__ import annotations

import inspect
from typing import Any

import jax

__all__ = ["Sampling", "SAMPLERS", "INITIALIZERS"]

SAMPLERS = (
  "ball", "bernoulli", "beta", "binomial", "bits", "categorical", "cauchy", "chisquare",
  "choice", "dirichlet", "double_sided_maxwell", "exponential", "f", "gamma",
  "generalized_normal", "geometric", "gumbel", "laplace", "loggamma", "logistic", "lognormal",
  "maxwell", "multinomial", "multivariate_normal", "normal", "orthogonal", "pareto",
  "permutation", "poisson", "rademacher", "randint", "rayleigh", "t", "triangular",
  "truncated_normal", "uniform", "wald", "weibull_min",
)
INITIALIZERS = (
  "delta_orthogonal", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
  "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform", "variance_scaling",
  "xavier_normal", "xavier_uniform",
)


class Sampling:
  """Mixin: the sampling methods, over ``_next_key()`` (the next key of a stream)."""

  __slots__ = ()

  def _next_key(self) -> jax.Array:
    raise NotImplementedError


def _sampler(name: str) -> Any:
  fn = getattr(jax.random, name)

  def method(self: Sampling, *args: Any, **kwargs: Any) -> Any:
    return fn(self._next_key(), *args, **kwargs)

  try:  # the sampler's own parameters after ``key``, for help() and signature checks
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1:]
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = sig.replace(parameters=[self_param, *params])
  except (TypeError, ValueError):
    pass

  method.__doc__ = f"``jax.random.{name}`` with this stream's next key as ``key``."
  return method


def _initializer(name: str) -> Any:
  factory = getattr(jax.nn.initializers, name)

  def method(self: Sampling, *args: Any, **kwargs: Any) -> Any:
    init = factory(*args, **kwargs)

    def draw(shape: Any, dtype: Any = None) -> jax.Array:
      key = self._next_key()
      return init(key, shape) if dtype is None else init(key, shape, dtype)

    return draw

  method.__doc__ = (f"``jax.nn.initializers.{name}(...)`` as an initializer ``(shape, dtype)`` "
                    "that draws this stream's next key on each call.")
  return method


for _names, _make in ((SAMPLERS, _sampler), (INITIALIZERS, _initializer)):
  for _name in _names:
    _method = _make(_name)
    _method.__name__, _method.__qualname__ = _name, f"Sampling.{_name}"
    setattr(Sampling, _name, _method)
