"""Helpers of data-parallel training loops: one-hot labels, sharding batches over devices.

``shard`` splits the leading (batch) axis of every array into ``(devices, batch/devices)``
for ``jax.pmap``; ``get_metrics`` brings per-device metrics back to the host, one row per
step.

>>> import numpy as np
>>> from flaxen.training import common_utils
>>> common_utils.onehot(np.array([0, 2]), 3)
Array([[1., 0., 0.],
       [0., 0., 1.]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["shard", "shard_prng_key", "stack_forest", "get_metrics", "onehot"]


def shard(xs: Any) -> Any:
  """Reshapes each array's leading axis ``b`` into ``(local_device_count, b // count)``.

  Args:
    xs: a pytree of arrays whose leading axis divides by ``jax.local_device_count()``.

  Returns:
    The same pytree with every leaf reshaped, ready for a ``pmap``-ed function.
  """
  count = jax.local_device_count()
  return jax.tree_util.tree_map(lambda x: x.reshape((count, -1) + x.shape[1:]), xs)


def shard_prng_key(prng_key: jax.Array) -> jax.Array:
  """Splits ``prng_key`` into one key per local device (a leading axis of that size)."""
  return jax.random.split(prng_key, num=jax.local_device_count())


def stack_forest(forest: Any) -> Any:
  """Stacks a sequence of pytrees of the same structure into one pytree of numpy arrays."""
  return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *forest)


def get_metrics(device_metrics: Any) -> Any:
  """Host copies of per-step, per-device metrics: device 0's values, stacked over steps.

  Args:
    device_metrics: a sequence (one entry per step) of pytrees whose leaves have a
      leading device axis, as a ``pmap``-ed step returns them.

  Returns:
    One pytree of numpy arrays with a leading step axis.
  """
  first = jax.tree_util.tree_map(lambda x: x[0], device_metrics)
  return stack_forest(jax.device_get(first))


def onehot(labels: Any, num_classes: int, on_value: float = 1.0, off_value: float = 0.0):
  """One-hot float32 encoding of integer ``labels`` along a new last axis.

  Args:
    labels: an integer array of any shape.
    num_classes: the size of the new axis; labels outside ``[0, num_classes)`` give a
      row of ``off_value``.
    on_value: the value at each label's position.
    off_value: the value elsewhere.
  """
  labels = jnp.asarray(labels)
  hit = labels[..., None] == jnp.arange(num_classes)
  return jnp.where(hit, on_value, off_value).astype(jnp.float32)
