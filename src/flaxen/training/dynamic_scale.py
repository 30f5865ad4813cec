"""Dynamic loss scaling, for gradients computed in float16.

Small float16 gradients flush to zero. Multiplying the loss by a large ``scale`` (and the
gradients back by ``1 / scale``) keeps them representable; when a gradient overflows to
inf or nan the step is reported non-finite and the scale shrinks, and after
``growth_interval`` finite steps in a row it grows again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import struct

__all__ = ["DynamicScale", "DynamicScaleResult"]

_F32_MAX = float(np.finfo(np.float32).max)


class DynamicScaleResult(NamedTuple):
  """What :meth:`DynamicScale.value_and_grad`'s function returns."""

  dynamic_scale: DynamicScale
  finite: jax.Array
  aux: Any
  grad: Any


class DynamicScale(struct.PyTreeNode):
  """Loss scaling state: the scale and the count of finite steps since it last changed.

  A pytree (``fin_steps`` and ``scale`` are its leaves), so it passes through ``jax.jit``
  and lives in a train state. Skip the update of a non-finite step yourself, e.g. with
  ``jnp.where(finite, new, old)`` on every leaf of the params and optimizer state.

  Attributes:
    growth_factor: the scale is multiplied by this after ``growth_interval`` finite steps.
    backoff_factor: the scale is multiplied by this after a non-finite step.
    growth_interval: finite steps in a row before the scale grows.
    fin_steps: finite steps since the scale last changed.
    scale: the current loss multiplier.
    minimum_scale: the scale never backs off below this (None: no bound).

  >>> import jax, jax.numpy as jnp
  >>> from flaxen.training.dynamic_scale import DynamicScale
  >>> ds = DynamicScale(scale=4.0)
  >>> ds, finite, loss, grad = ds.value_and_grad(lambda w: jnp.sum(w ** 2))(jnp.ones(2))
  >>> bool(finite), float(loss), grad
  (True, 2.0, Array([2., 2.], dtype=float32))
  """

  growth_factor: float = struct.field(pytree_node=False, default=2.0)
  backoff_factor: float = struct.field(pytree_node=False, default=0.5)
  growth_interval: int = struct.field(pytree_node=False, default=2000)
  fin_steps: Any = 0
  scale: Any = 65536.0
  minimum_scale: float | None = struct.field(
    pytree_node=False, default=float(np.finfo(np.float32).tiny)
  )

  def value_and_grad(
    self,
    fun: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    axis_name: str | None = None,
  ) -> Callable[..., DynamicScaleResult]:
    """Like ``jax.value_and_grad(fun, argnums, has_aux)``, with the loss scaled.

    Args:
      fun: returns a scalar loss (or ``(loss, aux)`` with ``has_aux``).
      argnums: which positional arguments to differentiate.
      has_aux: whether ``fun`` returns ``(loss, aux)``.
      axis_name: a ``pmap`` / ``shard_map`` axis over which the gradients are averaged
        (``lax.pmean``) before the finiteness check, so every replica agrees.

    Returns:
      A function of ``fun``'s arguments returning a :class:`DynamicScaleResult`:
      the updated DynamicScale, whether every gradient is finite, the unscaled value
      (``loss`` or ``(loss, aux)``) and the unscaled float32 gradients.
    """
    scale = self.scale

    @functools.wraps(fun)
    def scaled(*args):
      out = fun(*args)
      return (scale * out[0], out[1]) if has_aux else scale * out

    grad_fn = jax.value_and_grad(scaled, argnums, has_aux)

    def run(*args) -> DynamicScaleResult:
      value, grad = grad_fn(*args)
      value = (value[0] / scale, value[1]) if has_aux else value / scale
      grad = jax.tree_util.tree_map(lambda g: jnp.asarray(g, jnp.float32) / scale, grad)
      if axis_name is not None:
        grad = jax.lax.pmean(grad, axis_name)
      finite = jnp.array(True)
      for g in jax.tree_util.tree_leaves(grad):
        finite &= jnp.all(jnp.isfinite(g))
      return DynamicScaleResult(self._next(finite), finite, value, grad)

    return run

  def grad(
    self,
    fun: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    axis_name: str | None = None,
  ) -> Callable[..., tuple]:
    """Like :meth:`value_and_grad` without the value: returns ``(dynamic_scale, finite,
    grad)``, or ``(dynamic_scale, finite, aux, grad)`` with ``has_aux``."""
    value_and_grad = self.value_and_grad(fun, argnums, has_aux, axis_name)

    def run(*args):
      ds, finite, value, grad = value_and_grad(*args)
      return (ds, finite, value[1], grad) if has_aux else (ds, finite, grad)

    return run

  def _next(self, finite: jax.Array) -> DynamicScale:
    """The state after a step whose gradients were ``finite`` (or not)."""
    grow = self.fin_steps == self.growth_interval
    grown = jnp.minimum(self.scale * self.growth_factor, _F32_MAX)
    backed_off = self.scale * self.backoff_factor
    if self.minimum_scale is not None:
      backed_off = jnp.maximum(backed_off, self.minimum_scale)
    scale = jnp.where(finite, jnp.where(grow, grown, self.scale), backed_off)
    fin_steps = jnp.where(grow | ~finite, 0, self.fin_steps + 1)
    return self.replace(fin_steps=fin_steps, scale=scale)
