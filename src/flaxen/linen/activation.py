"""Activation functions of Linen (JAX's, see :mod:`flaxen.ops.activations`) and PReLU.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> nn.PReLU().apply({'params': {'negative_slope': jnp.array(0.5)}}, jnp.array([-2., 2.]))
Array([-1.,  2.], dtype=float32)
"""

from __future__ import annotations

import jax.numpy as jnp

from flaxen.linen.module import Module, compact
from flaxen.ops.activations import *  # noqa: F403
from flaxen.ops.activations import __all__ as _activations
from flaxen.ops.activations import standardize
from flaxen.ops.prelu import prelu
from flaxen.typing import Array, Dtype

__all__ = ["PReLU", "normalize", *_activations]

# Flax keeps JAX's former name of standardize in Linen.
normalize = standardize


class PReLU(Module):
  """Leaky ReLU with a learned negative slope (param ``negative_slope``, a scalar).

  Attributes:
    param_dtype: dtype of the slope.
    negative_slope_init: its initial value.
  """

  param_dtype: Dtype = jnp.float32
  negative_slope_init: float = 0.01

  @compact
  def __call__(self, inputs: Array) -> Array:
    slope = self.param("negative_slope",
                       lambda _: jnp.asarray(self.negative_slope_init, self.param_dtype))
    return prelu(inputs, slope)
