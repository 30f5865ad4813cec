"""Sequential: chain layers and functions.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(1)])
>>> variables = model.init(jax.random.key(0), jnp.ones((2, 4)))
>>> model.apply(variables, jnp.ones((2, 4))).shape
(2, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flaxen.errors.layers import EmptySequentialError
from flaxen.linen.module import Module
from flaxen.linen.param_checks import layer_name

__all__ = ["Sequential"]


class Sequential(Module):
  """Calls ``layers`` in order, each on the previous output.

  A tuple output is unpacked into the next layer's positional arguments and a dict
  output into its keyword arguments.

  Attributes:
    layers: modules or functions.
  """

  layers: Sequence[Callable[..., Any]]

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    if not self.layers:
      raise EmptySequentialError(layer_name(self))
    outputs = self.layers[0](*args, **kwargs)
    for layer in self.layers[1:]:
      if isinstance(outputs, tuple):
        outputs = layer(*outputs)
      elif isinstance(outputs, dict):
        outputs = layer(**outputs)
      else:
        outputs = layer(outputs)
    return outputs
