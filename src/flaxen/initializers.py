"""Parameter initializers, shared by Linen (``nn.initializers``) and NNX.

An initializer is a function ``init(key, shape, dtype=float32) -> array``. The ones built
from parameters (``normal(stddev)``, ``variance_scaling(...)``, ``zeros_init()``) are
factories that return such a function. ``zeros`` and ``ones`` are initializers themselves.

>>> import jax
>>> from flaxen import initializers
>>> init = initializers.lecun_normal()
>>> init(jax.random.key(0), (3, 4)).shape
(3, 4)
>>> initializers.zeros_init()(jax.random.key(0), (2,))
Array([0., 0.], dtype=float32)
"""

from __future__ import annotations

from jax.nn.initializers import (
  constant,
  delta_orthogonal,
  glorot_normal,
  glorot_uniform,
  he_normal,
  he_uniform,
  kaiming_normal,
  kaiming_uniform,
  lecun_normal,
  lecun_uniform,
  normal,
  ones,
  orthogonal,
  truncated_normal,
  uniform,
  variance_scaling,
  xavier_normal,
  xavier_uniform,
  zeros,
)

from flaxen.typing import Initializer

__all__ = [
  "Initializer", "constant", "delta_orthogonal", "glorot_normal", "glorot_uniform", "he_normal",
  "he_uniform", "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform", "normal",
  "ones", "ones_init", "orthogonal", "truncated_normal", "uniform", "variance_scaling",
  "xavier_normal", "xavier_uniform", "zeros", "zeros_init",
]


def zeros_init() -> Initializer:
  """An initializer that returns zeros, in the factory form the other initializers use.

  >>> import jax
  >>> zeros_init()(jax.random.key(0), (2, 1), jax.numpy.int32).tolist()
  [[0], [0]]
  """
  return zeros


def ones_init() -> Initializer:
  """An initializer that returns ones, in the factory form the other initializers use.

  >>> import jax
  >>> ones_init()(jax.random.key(0), (3,)).tolist()
  [1.0, 1.0, 1.0]
  """
  return ones
