"""Stateless math of layers, shared by Linen and NNX.

Plain functions of arrays, one concept per module; the layers of both APIs are thin
shells that create params and call these.
"""

from flaxen.ops import (
  activations,
  attention,
  conv,
  dtypes,
  embed,
  linear,
  normalization,
  pooling,
  recurrent,
  stochastic,
)

__all__ = [
  "activations", "attention", "conv", "dtypes", "embed", "linear", "normalization", "pooling",
  "recurrent", "stochastic",
]
