"""``nnx.TrainState``: a functional train state for an NNX model split into a GraphDef and
States (Flax's ``flax.nnx.helpers.TrainState``).

Like Linen's ``flaxen.training.train_state.TrainState`` it is an immutable pytree dataclass:
``apply_gradients`` returns a new state. ``apply`` merges the model from its GraphDef and the
named States, calls it, and returns the output with the model split again.

>>> import jax, jax.numpy as jnp, optax
>>> from flaxen import nnx
>>> graphdef, params = nnx.split(nnx.Linear(2, 1, rngs=nnx.Rngs(0)))
>>> state = nnx.TrainState.create(graphdef, params=params, tx=optax.sgd(0.1))
>>> def loss(params):
...   y, _ = state.replace(params=params).apply('params')(jnp.ones((1, 2)))
...   return y.sum()
>>> state = state.apply_gradients(jax.grad(loss)(state.params))
>>> int(state.step), state.params['bias'].value
(1, Array([-0.1], dtype=float32))
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax

from flaxen import struct
from flaxen.nnx.graph import GraphDef
from flaxen.nnx.graphlib import merge, split

__all__ = ["TrainState"]


class _ApplyCaller:
  """``state.apply(...)``: call it (or a method reached by attribute) on the merged model."""

  def __init__(self, graphdef: GraphDef, states: tuple, path: tuple[str, ...] = ()):
    self._graphdef, self._states, self._path = graphdef, states, path

  def __getattr__(self, name: str) -> _ApplyCaller:
    return _ApplyCaller(self._graphdef, self._states, (*self._path, name))

  def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, tuple[GraphDef, Any]]:
    module = merge(self._graphdef, *self._states, copy=True)  # the states stay as they were
    fn = module
    for name in self._path:
      fn = getattr(fn, name)
    out = fn(*args, **kwargs)
    graphdef, state = split(module)
    return out, (graphdef, state)


class TrainState(struct.PyTreeNode):
  """Step, params and optax state of a split NNX model; subclass it to add fields
  (e.g. ``batch_stats``).

  Attributes:
    graphdef: the model's GraphDef.
    params: the State the optimizer updates.
    opt_state: the optax state.
    step: the number of ``apply_gradients`` calls.
    tx: the optax transformation (static).
  """

  graphdef: GraphDef
  params: Any
  opt_state: Any
  step: Any
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, graphdef: GraphDef, *, params: Any, tx: optax.GradientTransformation,
             step: int = 0, **kwargs: Any) -> TrainState:
    """A state at ``step`` with ``tx.init(params)`` as its optax state; ``kwargs`` fill the
    fields a subclass adds."""
    return cls(graphdef=graphdef, params=params, opt_state=tx.init(params),
               step=jnp.asarray(step), tx=tx, **kwargs)

  def apply(self, state: Any, *states: Any) -> _ApplyCaller:
    """A callable that merges the model from ``graphdef`` and the given States (or names of
    this object's fields holding them), calls it and returns ``(out, (graphdef, state))``.
    ``state.apply('params').encode(x)`` calls a method instead."""
    got = tuple(getattr(self, s) if isinstance(s, str) else s for s in (state, *states))
    return _ApplyCaller(self.graphdef, got)

  def apply_gradients(self, grads: Any, **kwargs: Any) -> TrainState:
    """One optax step on ``params``; ``kwargs`` replace other fields at the same time."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    return self.replace(params=params, opt_state=opt_state, step=self.step + 1, **kwargs)
