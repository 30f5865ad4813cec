"""Math of recurrent layers, shared by Linen and NNX: the per-step state updates of the
cells (from already-computed projections) and the sequence helpers of ``RNN`` (reversing
padded sequences, picking each sequence's carry after its last valid step).

>>> import jax, jax.numpy as jnp
>>> flip_sequences(jnp.array([[1, 2, 0], [3, 4, 5]]), jnp.array([2, 3]), 1, False).tolist()
[[2, 1, 0], [5, 4, 3]]
>>> zeros = jnp.zeros((2, 4))
>>> c, h = lstm_step(zeros, zeros, zeros, zeros, jnp.ones((2, 4)), gate_fn=jax.nn.sigmoid,
...                  activation_fn=jnp.tanh)
>>> c[0, 0].item(), gru_step((zeros,) * 3, (zeros,) * 3, zeros, gate_fn=jax.nn.sigmoid,
...                          activation_fn=jnp.tanh).shape
(0.5, (2, 4))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from flaxen.typing import Array

__all__ = ["flip_sequences", "gru_step", "last_valid", "lstm_step", "mgu_step", "simple_step"]

Fn = Callable[[Array], Array]


def lstm_step(i: Array, f: Array, g: Array, o: Array, c: Array, *, gate_fn: Fn,
              activation_fn: Fn) -> tuple[Array, Array]:
  """One LSTM update from the pre-activations of the input, forget, candidate and output
  gates: ``c' = gate(f) c + gate(i) act(g)``, ``h' = gate(o) act(c')``.

  Args:
    i, f, g, o: pre-activations, each ``(*batch, features)``.
    c: the cell state.
    gate_fn: activation of the gates (usually sigmoid).
    activation_fn: activation of the candidate and of the output (usually tanh).

  Returns:
    ``(new_c, new_h)``.
  """
  new_c = gate_fn(f) * c + gate_fn(i) * activation_fn(g)
  return new_c, gate_fn(o) * activation_fn(new_c)


def gru_step(x: Sequence[Array], hp: Sequence[Array], h: Array, *, gate_fn: Fn,
             activation_fn: Fn) -> Array:
  """One GRU update: ``r = gate(x_r + h_r)``, ``z = gate(x_z + h_z)``,
  ``n = act(x_n + r h_n)`` and ``h' = (1 - z) n + z h``.

  Args:
    x: the input projections ``(x_r, x_z, x_n)``.
    hp: the hidden-state projections ``(h_r, h_z, h_n)``.
    h: the hidden state.
    gate_fn: activation of the gates; activation_fn: activation of the candidate ``n``.

  Returns:
    the new hidden state.
  """
  (x_r, x_z, x_n), (h_r, h_z, h_n) = x, hp
  r, z = gate_fn(x_r + h_r), gate_fn(x_z + h_z)
  n = activation_fn(x_n + r * h_n)
  return (1.0 - z) * n + z * h


def mgu_step(x_f: Array, h_f: Array, x_n: Array, h_n: Array, h: Array, *, gate_fn: Fn,
             activation_fn: Fn, reset_gate: bool = True) -> Array:
  """One minimal-gated-unit update: ``f = gate(x_f + h_f)``, ``n = act(x_n + f h_n)``
  (``act(x_n + h_n)`` without ``reset_gate``) and ``h' = (1 - f) n + f h``.

  Args:
    x_f, h_f: input and hidden projections of the forget gate.
    x_n, h_n: input and hidden projections of the candidate.
    h: the hidden state.
    gate_fn, activation_fn: as in :func:`gru_step`.
    reset_gate: whether the gate scales ``h_n``.

  Returns:
    the new hidden state.
  """
  f = gate_fn(x_f + h_f)
  n = activation_fn(x_n + (f * h_n if reset_gate else h_n))
  return (1.0 - f) * n + f * h


def simple_step(x: Array, hp: Array, h: Array, *, activation_fn: Fn,
                residual: bool = False) -> Array:
  """One Elman update: ``h' = act(x + hp)``, or ``act(x + hp + h)`` with ``residual``.

  Args:
    x: the input projection; hp: the hidden-state projection; h: the hidden state.
    activation_fn: the activation (usually tanh).
    residual: add ``h`` before the activation.

  Returns:
    the new hidden state.
  """
  pre = x + hp
  return activation_fn(pre + h if residual else pre)


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
