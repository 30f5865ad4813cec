"""``bridge.functional``: an NNX module class used through pure ``init`` / ``apply``.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> from flaxen.nnx import bridge
>>> linear = bridge.functional(nnx.Linear)(2, 3)
>>> state = linear.init(rngs=nnx.Rngs(0))
>>> y, (graphdef, new_state) = linear.apply(state)(jnp.ones((1, 2)))
>>> y.shape
(1, 3)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from flaxen.errors.nnx_bridge import FunctionalNotInitializedError
from flaxen.nnx.graph import GraphDef
from flaxen.nnx.graphlib import split
from flaxen.nnx.training.train_state import _ApplyCaller

__all__ = ["Functional", "functional"]


@dataclasses.dataclass
class Functional:
  """A module class with its constructor arguments; ``init`` builds it and returns its
  State (keeping its GraphDef), ``apply(*states)`` calls the module rebuilt from them.

  Attributes:
    module_type: the NNX module class.
    graphdef: set by ``init``.
    args: positional constructor arguments.
    kwargs: keyword constructor arguments.
  """

  module_type: Callable[..., Any]
  graphdef: GraphDef | None
  args: tuple
  kwargs: dict

  def init(self, *, rngs: Any = None) -> Any:
    """Builds the module (``rngs`` passed when given) and returns its State."""
    extra = {} if rngs is None else {"rngs": rngs}
    self.graphdef, state = split(self.module_type(*self.args, **self.kwargs, **extra))
    return state

  def apply(self, *states: Any) -> _ApplyCaller:
    """A callable that runs the module rebuilt from ``states`` and returns
    ``(out, (graphdef, state))``; reach a method as an attribute of it.

    Raises:
      FunctionalNotInitializedError: ``init`` has not run.
    """
    if self.graphdef is None:
      raise FunctionalNotInitializedError(getattr(self.module_type, "__name__", "module"))
    return _ApplyCaller(self.graphdef, states)


def functional(cls: Callable[..., Any]) -> Callable[..., Functional]:
  """``functional(cls)(*args, **kwargs)``: a :class:`Functional` of ``cls`` with those
  constructor arguments."""

  def make(*args: Any, **kwargs: Any) -> Functional:
    return Functional(cls, None, args, kwargs)

  return make
