"""Errors of optimizer steps: ``nnx.Optimizer.update`` and ``TrainState.apply_gradients``."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError

__all__ = ["OptimizerGradsError", "OptimizerModelError", "EMALeafError"]


class OptimizerGradsError(FlaxenError, ValueError):
  """An optimizer step got grads whose paths or shapes differ from the params it updates.

  ``path`` is the first differing path (a tuple of keys).
  """

  def __init__(self, where: str, path: tuple, expected: str, found: str):
    self.path = path
    if where.startswith("Optimizer"):
      fix = ("take the grads of this same model, e.g. `grads = nnx.grad(loss_fn)(model)`, with "
             "the wrt filter the Optimizer was built with "
             "(`nnx.grad(loss_fn, argnums=nnx.DiffState(0, wrt))`)")
    else:
      fix = ("differentiate with respect to these same params, e.g. "
             "`grads = jax.grad(loss_fn)(state.params)`, then `state.apply_gradients(grads=grads)`")
    at = "/".join(str(k) for k in path) or "<root>"
    super().__init__(
      f"{where}: at {at!r} the optimized params hold {expected}, but the grads hold {found}. "
      f"Fix: {fix}."
    )


class OptimizerModelError(FlaxenError, AttributeError):
  """``optimizer.model`` was read, but an ``nnx.Optimizer`` does not keep its model."""

  def __init__(self, cls_name: str):
    super().__init__(
      f"{cls_name} has no attribute 'model': since Flax 0.11 an nnx.Optimizer does not keep "
      "the model it optimizes. Fix: keep the model yourself and call "
      "`optimizer.update(model, grads)`, or build an nnx.ModelAndOptimizer, which keeps it."
    )


class EMALeafError(FlaxenError, TypeError):
  """``nnx.EMA``'s ``only`` filter selected a leaf that is not a Variable."""

  def __init__(self, path: tuple, found: str):
    self.path = path
    at = "/".join(str(k) for k in path) or "<root>"
    super().__init__(
      f"nnx.EMA tracks Variables only, but the leaf at {at!r} is a {found}. Fix: give an "
      "`only` filter that selects Variables (e.g. `only=nnx.Param`), or hold the value in a "
      "Variable."
    )
