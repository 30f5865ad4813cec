"""Learning-rate schedules of Flax's early examples; deprecated in favour of optax schedules.

Each builder logs a warning (as Flax does) and returns ``f(step) -> lr``. With
``warmup_length > 0`` (in epochs) the rate is multiplied by a factor that rises linearly
from 0 to 1 over the first ``warmup_length * steps_per_epoch`` steps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

__all__ = [
  "create_constant_learning_rate_schedule", "create_stepped_learning_rate_schedule",
  "create_cosine_learning_rate_schedule",
]

_log = logging.getLogger(__name__)


def _deprecated() -> None:
  _log.warning(
    "Learning rate schedules in flaxen.training.lr_schedule are deprecated, as in Flax; "
    "use optax schedules instead (optax.warmup_cosine_decay_schedule, "
    "optax.piecewise_constant_schedule, ...)."
  )


def _warmup(lr, step, warmup_length: float, steps_per_epoch: int):
  if warmup_length > 0.0:
    lr = lr * jnp.minimum(1.0, step / float(warmup_length) / steps_per_epoch)
  return lr


def create_constant_learning_rate_schedule(
  base_learning_rate: float, steps_per_epoch: int, warmup_length: float = 0.0
) -> Callable:
  """A constant rate ``base_learning_rate``, after the optional warmup.

  Args:
    base_learning_rate: the rate.
    steps_per_epoch: steps in one epoch (the unit of ``warmup_length``).
    warmup_length: epochs of linear warmup from 0; 0 for none.
  """
  _deprecated()
  return lambda step: _warmup(base_learning_rate, step, warmup_length, steps_per_epoch)


def create_stepped_learning_rate_schedule(
  base_learning_rate: float,
  steps_per_epoch: int,
  lr_sched_steps: Sequence[Sequence[float]],
  warmup_length: float = 0.0,
) -> Callable:
  """A piecewise-constant rate: ``base * factor`` from each ``[epoch, factor]`` on.

  Args:
    base_learning_rate: the rate before the first boundary.
    steps_per_epoch: steps in one epoch.
    lr_sched_steps: ``[[epoch, factor], ...]`` in increasing epochs; from step
      ``round(epoch * steps_per_epoch)`` (exclusive) the rate is ``base * factor``.
    warmup_length: epochs of linear warmup from 0; 0 for none.
  """
  _deprecated()
  bounds = np.round(np.array([e for e, _ in lr_sched_steps]) * steps_per_epoch).astype(int)
  values = base_learning_rate * np.array([1.0, *(f for _, f in lr_sched_steps)])

  def schedule(step):
    lr = jnp.take(values, jnp.sum(bounds < step))
    return _warmup(lr, step, warmup_length, steps_per_epoch)

  return schedule


def create_cosine_learning_rate_schedule(
  base_learning_rate: float, steps_per_epoch: int, halfcos_epochs: float,
  warmup_length: float = 0.0,
) -> Callable:
  """Half a cosine wave from ``base_learning_rate`` down to 0 over ``halfcos_epochs``.

  Args:
    base_learning_rate: the rate at step 0 (before warmup).
    steps_per_epoch: steps in one epoch.
    halfcos_epochs: epochs for the rate to fall to 0, usually the whole training.
    warmup_length: epochs of linear warmup from 0; 0 for none.
  """
  _deprecated()
  half_wave = halfcos_epochs * steps_per_epoch

  def schedule(step):
    lr = base_learning_rate * (0.5 + 0.5 * jnp.cos(step * jnp.pi / half_wave))
    return _warmup(lr, step, warmup_length, steps_per_epoch)

  return schedule
