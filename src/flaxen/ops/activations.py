"""Activation functions: JAX's, under the names Flax's activation namespaces use.

>>> import jax.numpy as jnp
>>> relu(jnp.array([-1., 2.])).tolist()
[0.0, 2.0]
"""

from jax.nn import (
  celu,
  elu,
  gelu,
  glu,
  hard_sigmoid,
  hard_silu,
  hard_swish,
  hard_tanh,
  identity,
  leaky_relu,
  log_sigmoid,
  log_softmax,
  logsumexp,
  one_hot,
  relu,
  relu6,
  selu,
  sigmoid,
  silu,
  soft_sign,
  softmax,
  softplus,
  standardize,
  swish,
)
from jax.numpy import tanh

__all__ = [
  "celu", "elu", "gelu", "glu", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh",
  "identity", "leaky_relu", "log_sigmoid", "log_softmax", "logsumexp", "one_hot", "relu",
  "relu6", "selu", "sigmoid", "silu", "soft_sign", "softmax", "softplus", "standardize",
  "swish", "tanh",
]
