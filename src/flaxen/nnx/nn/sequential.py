"""``nnx.Sequential``: call layers one after another.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> model = nnx.Sequential(nnx.Linear(2, 4, rngs=nnx.Rngs(0)), nnx.relu,
...                        nnx.Linear(4, 1, rngs=nnx.Rngs(1)))
>>> model(jnp.ones((3, 2))).shape
(3, 1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flaxen.errors.layers import EmptySequentialError
from flaxen.nnx.module import Module

__all__ = ["Sequential"]


class Sequential(Module):
  """Calls ``layers`` in order, each on the previous output.

  A tuple output is unpacked into the next layer's positional arguments and a dict output
  into its keyword arguments.

  Args:
    *fns: modules or functions; kept in the attribute ``layers`` (a list, so submodules'
      state is found under ``layers/0``, ``layers/1``...).
  """

  def __init__(self, *fns: Callable[..., Any]):
    self.layers = list(fns)

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    if not self.layers:
      raise EmptySequentialError(type(self).__name__)
    outputs = self.layers[0](*args, **kwargs)
    for layer in self.layers[1:]:
      if isinstance(outputs, tuple):
        outputs = layer(*outputs)
      elif isinstance(outputs, dict):
        outputs = layer(**outputs)
      else:
        outputs = layer(outputs)
    return outputs
