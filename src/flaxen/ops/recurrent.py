"""Sequence helpers of recurrent layers: reversing padded sequences and picking each
sequence's carry after its last valid step. Shared by Linen's and NNX's ``RNN``.

>>> import jax.numpy as jnp
>>> flip_sequences(jnp.array([[1, 2, 0], [3, 4, 5]]), jnp.array([2, 3]), 1, False).tolist()
[[2, 1, 0], [5, 4, 3]]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from flaxen.typing import Array

__all__ = ["flip_sequences", "last_valid"]


def flip_sequences(inputs: Array, seq_lengths: Array | None, num_batch_dims: int,
                   time_major: bool) -> Array:
  """Reverses each sequence along the time axis, keeping padding at the end.

  With ``seq_lengths``, step ``t < length`` of a sequence takes its step ``length - 1 - t``;
  the padding steps follow (in reverse order), so flipping twice restores the input.
  """
  time_axis = 0 if time_major else num_batch_dims
  if seq_lengths is None:
    return jnp.flip(inputs, time_axis)
  steps = inputs.shape[time_axis]
  t = jnp.arange(steps).reshape([steps if a == time_axis else 1
                                 for a in range(num_batch_dims + 1)])
  index = (jnp.expand_dims(seq_lengths, time_axis) - 1 - t) % steps
  index = index.reshape(index.shape + (1,) * (inputs.ndim - index.ndim))
  return jnp.take_along_axis(inputs, index, axis=time_axis)


def last_valid(carries: Any, seq_lengths: Array) -> Any:
  """From carries stacked along axis 0, each sequence's carry after its last valid step."""

  def pick(x: Array) -> Array:
    index = (seq_lengths - 1) % x.shape[0]
    index = index.reshape((1, *index.shape) + (1,) * (x.ndim - 1 - index.ndim))
    return jnp.take_along_axis(x, index, axis=0)[0]

  return jax.tree.map(pick, carries)
