"""Checking that gradients have the structure of the params an optimizer step updates.

Without it, grads of another model (or of part of the params) fail deep inside optax as a
bare broadcasting or pytree error; with it the error names the first differing path and
both shapes. Used by ``TrainState.apply_gradients`` and ``nnx.Optimizer.update``; it runs
at trace time under ``jax.jit``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from flaxen.errors.training import OptimizerGradsError

__all__ = ["check_grads"]


def check_grads(params: Any, grads: Any, where: str) -> None:
  """Raises :class:`OptimizerGradsError` at the first path whose grad is missing, extra or
  of another shape than its param. ``where`` names the step in the message."""
  if jax.tree.structure(params) == jax.tree.structure(grads) and all(
      np.shape(p) == np.shape(g)
      for p, g in zip(jax.tree.leaves(params), jax.tree.leaves(grads), strict=True)):
    return
  want, got = _shapes(params), _shapes(grads)
  for path in sorted(want.keys() | got.keys(), key=str):
    if path not in got:
      raise OptimizerGradsError(where, path, f"a value of shape {want[path]}", "no entry")
    if path not in want:
      raise OptimizerGradsError(where, path, "no entry", f"a value of shape {got[path]}")
    if want[path] != got[path]:
      raise OptimizerGradsError(where, path, f"a value of shape {want[path]}",
                                f"a value of shape {got[path]}")
  # Same paths and shapes in other container types (dict vs FrozenDict): optax decides.


def _shapes(tree: Any) -> dict[tuple, tuple]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {tuple(_key(k) for k in path): np.shape(x) for path, x in leaves}


def _key(entry: Any) -> Any:
  return getattr(entry, "key", getattr(entry, "idx", entry))
