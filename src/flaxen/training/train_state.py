"""The training state Linen users step with an optax optimizer.

>>> import jax, jax.numpy as jnp, optax
>>> from flaxen.training.train_state import TrainState
>>> state = TrainState.create(apply_fn=None, params={"w": jnp.ones(2)}, tx=optax.sgd(0.5))
>>> state = state.apply_gradients(grads={"w": jnp.ones(2)})
>>> int(state.step), state.params["w"].tolist()
(1, [0.5, 0.5])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

from flaxen import struct
from flaxen.training.grads import check_grads

__all__ = ["TrainState"]


class TrainState(struct.PyTreeNode):
  """Step counter, params, optimizer and its state in one pytree.

  ``apply_fn`` and ``tx`` are static (part of the tree structure, not traced); subclass
  it to carry more fields (e.g. ``batch_stats``) and pass them to ``create``.

  Attributes:
    step: how many times ``apply_gradients`` was called.
    apply_fn: usually ``model.apply``.
    params: the parameters being optimized.
    tx: the optax gradient transformation.
    opt_state: ``tx``'s state for ``params``.
  """

  step: int | jax.Array
  apply_fn: Callable = struct.field(pytree_node=False)
  params: Any = struct.field(pytree_node=True)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)
  opt_state: optax.OptState = struct.field(pytree_node=True)

  def apply_gradients(self, *, grads: Any, **kwargs: Any) -> TrainState:
    """One optimizer step: ``params`` updated by ``tx`` with ``grads``, ``step`` + 1.

    Args:
      grads: gradients with the structure of ``params``.
      **kwargs: other fields to replace at the same time (e.g. ``batch_stats``).

    Raises:
      OptimizerGradsError: ``grads`` has other paths or shapes than ``params``.
    """
    check_grads(self.params, grads, "TrainState.apply_gradients")
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **kwargs)

  @classmethod
  def create(cls, *, apply_fn: Callable, params: Any, tx: optax.GradientTransformation,
             **kwargs: Any) -> TrainState:
    """A state at step 0 with ``tx.init(params)`` as optimizer state."""
    return cls(step=0, apply_fn=apply_fn, params=params, tx=tx, opt_state=tx.init(params),
               **kwargs)
