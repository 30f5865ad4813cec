"""Recurrent NNX layers over whole sequences: ``RNN`` and ``Bidirectional`` (the cells live
in :mod:`flaxen.nnx.nn.recurrent_cells` and are re-exported here, as in Flax).

``RNN`` runs a cell under :func:`nnx.scan <flaxen.nnx.scan>`; by default the cell's whole
state is carried through the loop, so state the cell changes (an rng count) survives it.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> rnn = nnx.RNN(nnx.LSTMCell(3, 4, rngs=nnx.Rngs(0)), return_carry=True)
>>> (c, h), y = rnn(jnp.ones((2, 7, 3)))   # (batch, time, features)
>>> y.shape, h.shape
((2, 7, 4), (2, 4))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from flaxen import initializers
from flaxen.errors.layers import InputShapeError, SeqLengthsError
from flaxen.nnx.module import Module
from flaxen.nnx.nn.defaults import default_bias_init, default_kernel_init
from flaxen.nnx.nn.recurrent_cells import (
  GRUCell,
  LSTMCell,
  OptimizedLSTMCell,
  RNNCellBase,
  SimpleCell,
)
from flaxen.nnx.rnglib import Rngs, split_rngs
from flaxen.nnx.transforms.axes import Carry as CarryAxis
from flaxen.nnx.transforms.axes import StateAxes
from flaxen.nnx.transforms.scan import scan
from flaxen.ops.recurrent import flip_sequences, last_valid
from flaxen.typing import Dtype

__all__ = [
  "Bidirectional", "GRUCell", "LSTMCell", "OptimizedLSTMCell", "RNN", "RNNBase", "RNNCellBase",
  "SimpleCell", "default_bias_init", "default_kernel_init", "flip_sequences",
  "modified_orthogonal",
]

Carry = Any


def modified_orthogonal(key: jax.Array, shape: tuple[int, ...],
                        dtype: Dtype = jnp.float32) -> jax.Array:
  """An orthogonal matrix drawn in float32, then cast to ``dtype`` (so half-precision
  recurrent kernels start from the same values as float32 ones).

  >>> w = modified_orthogonal(jax.random.key(0), (3, 3), jnp.bfloat16)
  >>> w.dtype
  dtype(bfloat16)
  """
  return initializers.orthogonal()(key, shape, jnp.float32).astype(dtype)


class RNNBase(Module):
  """Base class of the sequence layers (:class:`RNN`, :class:`Bidirectional`):
  ``__call__(inputs, *, initial_carry, rngs, seq_lengths, return_carry, time_major,
  reverse, keep_order)``."""

  def __call__(self, inputs: jax.Array, *, initial_carry: Carry | None = None,
               rngs: Rngs | None = None, seq_lengths: jax.Array | None = None,
               return_carry: bool | None = None, time_major: bool | None = None,
               reverse: bool | None = None, keep_order: bool | None = None) -> Any:
    raise NotImplementedError(f"{type(self).__name__} must define __call__")


class RNN(RNNBase):
  """Applies a cell over the time axis of ``(*batch, time, features)`` inputs.

  Args:
    cell: the cell (a submodule ``cell``); its params are shared by every step.
    time_major: inputs are ``(time, *batch, features)``.
    return_carry: return ``(final_carry, outputs)`` instead of the outputs only.
    reverse: process each sequence from its last valid step to its first; the outputs are
      in processing order unless ``keep_order``.
    keep_order: with ``reverse``, flip the outputs back to the input order.
    unroll: scan steps unrolled per loop iteration.
    state_axes: how ``nnx.scan`` treats the cell's state (default
      ``nnx.StateAxes({...: nnx.Carry})``: all of it carried from step to step).
    broadcast_rngs: a filter of rng streams (e.g. ``'recurrent_dropout'``) whose one key,
      drawn once per call, every step shares (the same dropout mask at every step), instead
      of each step drawing its own.
    rngs: an ``Rngs`` used by ``initialize_carry`` when the call gives none (``True`` /
      ``False``: none kept).
  """

  def __init__(self, cell: RNNCellBase, *, time_major: bool = False,
               return_carry: bool = False, reverse: bool = False, keep_order: bool = False,
               unroll: int = 1, state_axes: StateAxes | None = None,
               broadcast_rngs: Any = None, rngs: Rngs | bool = True):
    self.cell = cell
    self.broadcast_rngs = broadcast_rngs
    self.rngs = rngs if isinstance(rngs, Rngs) else None
    self.time_major = time_major
    self.return_carry = return_carry
    self.reverse = reverse
    self.keep_order = keep_order
    self.unroll = unroll
    self.state_axes = state_axes

  def __call__(self, inputs: jax.Array, *, initial_carry: Carry | None = None,
               seq_lengths: jax.Array | None = None, return_carry: bool | None = None,
               time_major: bool | None = None, reverse: bool | None = None,
               keep_order: bool | None = None, rngs: Rngs | None = None) -> Any:
    """Runs the cell over ``inputs``; the keyword arguments override the attributes.

    Args:
      inputs: the sequence.
      initial_carry: the carry before the first step (default:
        ``cell.initialize_carry(one step's shape, rngs)``).
      seq_lengths: integer array of the batch shape: the valid steps of each sequence.
        Later steps are still computed, but the returned carry is the one after the last
        valid step (and ``reverse`` flips only the valid part).
      rngs: passed to ``initialize_carry`` (default: the layer's ``rngs``).

    Raises:
      InputShapeError: ``inputs`` has no time axis besides the feature axis.
      SeqLengthsError: ``seq_lengths`` is not an integer array of the batch shape.
    """
    pick = lambda given, default: default if given is None else given  # noqa: E731
    return_carry = pick(return_carry, self.return_carry)
    time_major = pick(time_major, self.time_major)
    reverse = pick(reverse, self.reverse)
    keep_order = pick(keep_order, self.keep_order)
    where = type(self).__name__

    inputs = jnp.asarray(inputs)
    if inputs.ndim < 2:
      raise InputShapeError(where, "a time axis and a feature axis", inputs.shape,
                            "pass a sequence shaped (*batch, time, features), or "
                            "(time, *batch, features) with time_major=True")
    time_axis = 0 if time_major else inputs.ndim - 2
    batch_shape = inputs.shape[1:-1] if time_major else inputs.shape[:-2]
    if seq_lengths is not None:
      seq_lengths = jnp.asarray(seq_lengths)
      if seq_lengths.shape != batch_shape or not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
        raise SeqLengthsError(where, batch_shape,
                              f"shape {seq_lengths.shape} and dtype {seq_lengths.dtype}")

    def flip(x: jax.Array) -> jax.Array:
      return flip_sequences(x, seq_lengths, len(batch_shape), time_major)

    if reverse:
      inputs = flip(inputs)
    if initial_carry is None:
      step_shape = inputs.shape[:time_axis] + inputs.shape[time_axis + 1:]
      initial_carry = self.cell.initialize_carry(step_shape, self.rngs if rngs is None else rngs)

    keep_carries = seq_lengths is not None and return_carry

    def step(cell: RNNCellBase, carry: Carry, x: jax.Array) -> tuple[Carry, Any]:
      carry, y = cell(carry, x)
      return carry, ((carry, y) if keep_carries else y)

    state_axes = self.state_axes
    if state_axes is None:
      state_axes = StateAxes({...: CarryAxis} if self.broadcast_rngs is None
                             else {self.broadcast_rngs: None, ...: CarryAxis})
    looped = scan(step, in_axes=(state_axes, CarryAxis, time_axis), out_axes=(CarryAxis, 0),
                  unroll=self.unroll)
    if self.broadcast_rngs is None:
      carry, outputs = looped(self.cell, initial_carry, inputs)
    else:
      # One draw from each broadcast stream per call; every step starts from that key.
      with split_rngs(self.cell, splits=1, only=self.broadcast_rngs, squeeze=True):
        carry, outputs = looped(self.cell, initial_carry, inputs)
    if keep_carries:
      carries, outputs = outputs
      carry = last_valid(carries, seq_lengths)
    outputs = jax.tree.map(lambda y: jnp.moveaxis(y, 0, time_axis), outputs)
    if reverse and keep_order:
      outputs = flip(outputs)
    return (carry, outputs) if return_carry else outputs


def _concatenate(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.concatenate([a, b], axis=-1)


class Bidirectional(RNNBase):
  """Runs one RNN forwards and another backwards over the same inputs and merges their
  outputs (the backward outputs in input order).

  Args:
    forward_rnn, backward_rnn: :class:`RNN` modules.
    merge_fn: combines the two outputs (default: concatenation along the last axis).
    time_major: inputs are ``(time, *batch, features)``.
    return_carry: return ``((forward_carry, backward_carry), outputs)``.
    rngs: an ``Rngs`` passed to both RNNs when the call gives none (``True`` / ``False``:
      none kept).

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> cell = lambda seed: nnx.GRUCell(3, 4, rngs=nnx.Rngs(seed))
  >>> bi = nnx.Bidirectional(nnx.RNN(cell(0)), nnx.RNN(cell(1)))
  >>> bi(jnp.ones((2, 5, 3))).shape
  (2, 5, 8)
  """

  merge_fn = _concatenate  # a default only: __init__ sets the instance's
  time_major: bool = False
  return_carry: bool = False

  def __init__(self, forward_rnn: RNN, backward_rnn: RNN, *,
               merge_fn: Callable[[Any, Any], Any] = _concatenate, time_major: bool = False,
               return_carry: bool = False, rngs: Rngs | bool = True):
    self.rngs = rngs if isinstance(rngs, Rngs) else None
    self.forward_rnn = forward_rnn
    self.backward_rnn = backward_rnn
    self.merge_fn = merge_fn
    self.time_major = time_major
    self.return_carry = return_carry

  def __call__(self, inputs: jax.Array, *, initial_carry: tuple[Carry, Carry] | None = None,
               rngs: Rngs | None = None, seq_lengths: jax.Array | None = None,
               return_carry: bool | None = None, time_major: bool | None = None,
               reverse: bool | None = None, keep_order: bool | None = None) -> Any:
    """Runs both RNNs; ``reverse`` and ``keep_order`` are accepted for signature
    compatibility and ignored (the directions are fixed)."""
    del reverse, keep_order
    return_carry = self.return_carry if return_carry is None else return_carry
    time_major = self.time_major if time_major is None else time_major
    carry_fw, carry_bw = (None, None) if initial_carry is None else initial_carry
    rngs = self.rngs if rngs is None else rngs
    common = dict(rngs=rngs, seq_lengths=seq_lengths, return_carry=True, time_major=time_major)
    carry_fw, out_fw = self.forward_rnn(inputs, initial_carry=carry_fw, reverse=False,
                                        **common)
    carry_bw, out_bw = self.backward_rnn(inputs, initial_carry=carry_bw, reverse=True,
                                         keep_order=True, **common)
    outputs = jax.tree.map(self.merge_fn, out_fw, out_bw)
    return ((carry_fw, carry_bw), outputs) if return_carry else outputs
