"""``flaxen.nnx.optimizer``: :mod:`flaxen.nnx.training.optimizer` under the shorter path
(Flax exposes both)."""

from flaxen.nnx.training.optimizer import (
  MISSING,
  ModelAndOptimizer,
  OptArray,
  Optimizer,
  OptState,
  OptVariable,
  to_opt_state,
)

__all__ = ["MISSING", "ModelAndOptimizer", "OptArray", "OptState", "OptVariable", "Optimizer",
           "to_opt_state"]
