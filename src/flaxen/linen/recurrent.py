"""Recurrent layers over whole sequences: :class:`RNN` and :class:`Bidirectional`.

``RNN`` scans a cell (see :mod:`flaxen.linen.recurrent_cells`) over the time axis with the
lifted :func:`flaxen.linen.scan`: one set of params (``variable_broadcast='params'``), the
carry threaded from step to step, outputs stacked along the time axis. Inputs are
``(*batch, time, *features)`` (or ``(time, *batch, *features)`` when ``time_major``), where
``features`` is as many axes as the cell's ``num_feature_axes``.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> rnn = nn.RNN(nn.LSTMCell(4), return_carry=True)
>>> x = jnp.ones((2, 7, 3))  # (batch, time, features)
>>> variables = rnn.init(jax.random.key(0), x)
>>> (c, h), y = rnn.apply(variables, x)
>>> y.shape, h.shape, list(variables["params"])
((2, 7, 4), (2, 4), ['cell'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flaxen.core.filters import CollectionFilter
from flaxen.core.frozen_dict import FrozenDict
from flaxen.errors.layers import InputShapeError, SeqLengthsError
from flaxen.linen.module import Module
from flaxen.linen.param_checks import layer_name
from flaxen.linen.recurrent_cells import RNNCellBase
from flaxen.linen.transforms.scan import scan
from flaxen.ops.recurrent import flip_sequences
from flaxen.ops.recurrent import last_valid as _last_valid
from flaxen.typing import Array, PRNGKey

__all__ = ["RNN", "Bidirectional", "flip_sequences"]

Carry = Any


class RNN(Module):
  """Applies a recurrent cell over the time axis of a sequence.

  The cell's params live under ``cell`` and are shared by all steps. Steps past a
  sequence's ``seq_lengths`` entry are padding: they are still computed (their outputs are
  not zeroed), but the returned carry is the one after the last valid step.

  Attributes:
    cell: the :class:`RNNCellBase` applied at each step.
    time_major: inputs are ``(time, *batch, *features)`` instead of
      ``(*batch, time, *features)``.
    return_carry: return ``(final_carry, outputs)`` instead of the outputs only.
    reverse: process the sequence from its last valid step to its first; the outputs are
      in processing order unless ``keep_order``.
    keep_order: with ``reverse``, flip the outputs back to the input order.
    unroll: scan steps unrolled per loop iteration.
    variable_axes, variable_broadcast, variable_carry, split_rngs: passed to
      :func:`flaxen.linen.scan`.
  """

  cell: RNNCellBase
  time_major: bool = False
  return_carry: bool = False
  reverse: bool = False
  keep_order: bool = False
  unroll: int = 1
  variable_axes: Mapping[CollectionFilter, Any] = FrozenDict()
  variable_broadcast: CollectionFilter = "params"
  variable_carry: CollectionFilter = False
  split_rngs: Mapping[Any, bool] = FrozenDict({"params": False})

  def __call__(self, inputs: Array, *, initial_carry: Carry | None = None,
               init_key: PRNGKey | None = None, seq_lengths: Array | None = None,
               return_carry: bool | None = None, time_major: bool | None = None,
               reverse: bool | None = None, keep_order: bool | None = None) -> Any:
    """Runs the cell over ``inputs``; the keyword arguments override the attributes.

    Args:
      inputs: the sequence, ``(*batch, time, *features)`` (or time first).
      initial_carry: the carry before the first step (default:
        ``cell.initialize_carry(init_key, one step's shape)``).
      init_key: key for ``initialize_carry`` (default ``jax.random.key(0)``).
      seq_lengths: integer array of shape ``batch``: the number of valid steps of each
        sequence.

    Returns:
      The outputs stacked along the time axis, or ``(carry, outputs)`` with
      ``return_carry``.

    Raises:
      InputShapeError: ``inputs`` has no time axis besides the cell's feature axes.
      SeqLengthsError: ``seq_lengths`` is not an integer array of the batch shape.
    """
    pick = lambda given, default: default if given is None else given  # noqa: E731
    return_carry = pick(return_carry, self.return_carry)
    time_major = pick(time_major, self.time_major)
    reverse = pick(reverse, self.reverse)
    keep_order = pick(keep_order, self.keep_order)

    inputs = jnp.asarray(inputs)
    num_features = self.cell.num_feature_axes
    if inputs.ndim < num_features + 1:
      raise InputShapeError(
        layer_name(self), f"a time axis and {num_features} feature axis/axes", inputs.shape,
        "pass a sequence shaped (*batch, time, *features), or (time, *batch, *features) "
        "with time_major=True")
    time_axis = 0 if time_major else inputs.ndim - num_features - 1
    batch_shape = inputs.shape[1:inputs.ndim - num_features] if time_major else \
      inputs.shape[:time_axis]
    if seq_lengths is not None:
      seq_lengths = jnp.asarray(seq_lengths)
      if seq_lengths.shape != batch_shape or not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
        raise SeqLengthsError(layer_name(self), batch_shape,
                              f"shape {seq_lengths.shape} and dtype {seq_lengths.dtype}")

    def flip(x: Array) -> Array:
      return flip_sequences(x, seq_lengths, len(batch_shape), time_major)

    if reverse:
      inputs = flip(inputs)
    if initial_carry is None:
      step_shape = inputs.shape[:time_axis] + inputs.shape[time_axis + 1:]
      key = jax.random.key(0) if init_key is None else init_key
      initial_carry = self.cell.initialize_carry(key, step_shape)

    # With seq_lengths the final carry is read from the stacked carries after the loop:
    # cheaper than a select in every step, and only paid for when the carry is returned.
    keep_carries = seq_lengths is not None and return_carry

    def step(cell: RNNCellBase, carry: Carry, x: Array) -> tuple[Carry, Any]:
      carry, y = cell(carry, x)
      return carry, ((carry, y) if keep_carries else y)

    scanned = scan(
      step, in_axes=time_axis, out_axes=0, unroll=self.unroll,
      variable_axes=self.variable_axes, variable_broadcast=self.variable_broadcast,
      variable_carry=self.variable_carry, split_rngs=self.split_rngs)
    carry, outputs = scanned(self.cell, initial_carry, inputs)
    if keep_carries:
      carries, outputs = outputs
      carry = _last_valid(carries, seq_lengths)
    outputs = jax.tree.map(lambda y: jnp.moveaxis(y, 0, time_axis), outputs)
    if reverse and keep_order:
      outputs = flip(outputs)
    return (carry, outputs) if return_carry else outputs


def _concatenate(a: Array, b: Array) -> Array:
  return jnp.concatenate([a, b], axis=-1)


class Bidirectional(Module):
  """Runs one RNN forward and another backward over the same inputs and merges the outputs.

  The backward outputs are flipped back to the input order (padding stays at the end), so
  step ``t`` of the result sees the whole sequence.

  Attributes:
    forward_rnn: an :class:`RNN` (or a module with its call signature) for left to right.
    backward_rnn: the same for right to left (a separate module: params are not shared).
    merge_fn: combines the two outputs (default: concatenate the features).
    time_major: as in :class:`RNN`.
    return_carry: return ``((forward_carry, backward_carry), outputs)``.

  >>> import jax, jax.numpy as jnp
  >>> import flaxen.linen as nn
  >>> bi = nn.Bidirectional(nn.RNN(nn.GRUCell(4)), nn.RNN(nn.GRUCell(4)))
  >>> x = jnp.ones((2, 5, 3))
  >>> bi.apply(bi.init(jax.random.key(0), x), x).shape
  (2, 5, 8)
  """

  forward_rnn: Any
  backward_rnn: Any
  merge_fn: Callable[[Array, Array], Array] = _concatenate
  time_major: bool = False
  return_carry: bool = False

  def __call__(self, inputs: Array, *, initial_carry: tuple[Carry, Carry] | None = None,
               init_key: PRNGKey | None = None, seq_lengths: Array | None = None,
               return_carry: bool | None = None, time_major: bool | None = None,
               reverse: bool | None = None, keep_order: bool | None = None) -> Any:
    """Arguments as in :meth:`RNN.__call__`; ``initial_carry`` and the returned carry are
    ``(forward, backward)`` pairs, ``init_key`` is split between the two, and ``reverse``
    and ``keep_order`` are accepted for signature compatibility and ignored."""
    del reverse, keep_order
    time_major = self.time_major if time_major is None else time_major
    return_carry = self.return_carry if return_carry is None else return_carry
    keys = (None, None) if init_key is None else tuple(jax.random.split(init_key))
    carries = (None, None) if initial_carry is None else initial_carry
    common = dict(seq_lengths=seq_lengths, return_carry=True, time_major=time_major)
    carry_f, out_f = self.forward_rnn(inputs, initial_carry=carries[0], init_key=keys[0],
                                      reverse=False, **common)
    carry_b, out_b = self.backward_rnn(inputs, initial_carry=carries[1], init_key=keys[1],
                                       reverse=True, keep_order=True, **common)
    outputs = jax.tree.map(self.merge_fn, out_f, out_b)
    return ((carry_f, carry_b), outputs) if return_carry else outputs
