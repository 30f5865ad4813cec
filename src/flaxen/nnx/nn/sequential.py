"""``nnx.Sequential``: call layers one after another.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> model = nnx.Sequential(nnx.Linear(2, 4, rngs=nnx.Rngs(0)), nnx.relu,
...                        nnx.Linear(4, 1, rngs=nnx.Rngs(1)))
>>> model(jnp.ones((3, 2))).shape
(3, 1)
"""

from __future__ import annotations

import inspect
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

  def __call__(self, *args: Any, rngs: Any = None, **kwargs: Any) -> Any:
    """Runs the layers; ``rngs`` goes to every layer that takes an ``rngs`` keyword."""
    if not self.layers:
      raise EmptySequentialError(type(self).__name__)
    outputs = None
    for i, layer in enumerate(self.layers):
      if i > 0:
        if isinstance(outputs, tuple):
          args, kwargs = outputs, {}
        elif isinstance(outputs, dict):
          args, kwargs = (), outputs
        else:
          args, kwargs = (outputs,), {}
      if rngs is not None and _takes_rngs(layer):
        kwargs = {**kwargs, "rngs": rngs}
      outputs = layer(*args, **kwargs)
    return outputs


def _takes_rngs(f: Callable[..., Any]) -> bool:
  """Whether ``f`` accepts an ``rngs`` keyword argument."""
  try:
    params = inspect.signature(f).parameters
  except (TypeError, ValueError):  # builtins without a signature
    return False
  p = params.get("rngs")
  return p is not None and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
