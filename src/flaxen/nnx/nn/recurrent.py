"""Recurrent NNX layers: the cells LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell, and
``RNN``, which scans a cell over the time axis.

A cell maps ``(carry, inputs) -> (new_carry, output)`` for one time step; its linear maps
are :class:`~flaxen.nnx.Linear` submodules. ``RNN`` runs the cell under ``jax.lax.scan``
with the cell's state (``nnx.split``) threaded through the loop and written back after it.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> rnn = nnx.RNN(nnx.LSTMCell(3, 4, rngs=nnx.Rngs(0)), return_carry=True)
>>> (c, h), y = rnn(jnp.ones((2, 7, 3)))   # (batch, time, features)
>>> y.shape, h.shape
((2, 7, 4), (2, 4))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from flaxen import initializers
from flaxen.errors.layers import InputShapeError, SeqLengthsError
from flaxen.nnx.graphlib import merge, split, update
from flaxen.nnx.module import Module
from flaxen.nnx.nn.linear import NO_METADATA, Linear, default_bias_init, default_kernel_init
from flaxen.nnx.rnglib import Rngs
from flaxen.ops.recurrent import flip_sequences, last_valid
from flaxen.typing import Dtype, Initializer

__all__ = [
  "Bidirectional", "GRUCell", "LSTMCell", "OptimizedLSTMCell", "RNN", "RNNCellBase",
  "SimpleCell", "flip_sequences",
]

Carry = Any
default_recurrent_kernel_init = initializers.orthogonal()
default_carry_init = initializers.zeros_init()


class RNNCellBase(Module):
  """Base class of cells: ``__call__(carry, inputs) -> (new_carry, output)``,
  ``initialize_carry(input_shape, rngs=None)`` and ``num_feature_axes``."""

  hidden_features: int
  carry_init: Initializer
  param_dtype: Dtype
  _two_states = False

  def initialize_carry(self, input_shape: Sequence[int], rngs: Rngs | None = None,
                       carry_init: Initializer | None = None) -> Carry:
    """The carry before the first step, for one step's ``input_shape`` ``(*batch, in)``:
    ``(*batch, hidden_features)`` arrays made by ``carry_init`` (LSTMs: ``(c, h)``).

    Args:
      input_shape: the shape of one step's inputs.
      rngs: where to draw keys for a random ``carry_init`` (its ``carry`` stream; default:
        the rngs the cell kept with ``keep_rngs``, else a fixed key).
      carry_init: overrides the cell's ``carry_init``.
    """
    init = self.carry_init if carry_init is None else carry_init
    shape = (*input_shape[:-1], self.hidden_features)
    rngs = self.rngs if rngs is None else rngs
    key = rngs.carry() if rngs is not None else jax.random.key(0)
    if self._two_states:
      key_c, key_h = jax.random.split(key)
      return init(key_c, shape, self.param_dtype), init(key_h, shape, self.param_dtype)
    return init(key, shape, self.param_dtype)

  @property
  def num_feature_axes(self) -> int:
    return 1

  def _common(self, *, hidden_features: int, kernel_init: Initializer,
              recurrent_kernel_init: Initializer, bias_init: Initializer,
              dtype: Dtype | None, param_dtype: Dtype, carry_init: Initializer | None,
              keep_rngs: bool, rngs: Rngs, kernel_metadata: Mapping[str, Any],
              recurrent_kernel_metadata: Mapping[str, Any], bias_metadata: Mapping[str, Any],
              ) -> tuple[Callable[..., Linear], Callable[..., Linear]]:
    """Stores the shared attributes; returns factories of input and recurrent Linears."""
    self.hidden_features = hidden_features
    self.kernel_init = kernel_init
    self.recurrent_kernel_init = recurrent_kernel_init
    self.bias_init = bias_init
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.carry_init = default_carry_init if carry_init is None else carry_init
    self.rngs = rngs if keep_rngs else None
    common = dict(dtype=dtype, param_dtype=param_dtype, bias_init=bias_init, rngs=rngs,
                  bias_metadata=bias_metadata)

    def dense_i(in_features: int, out_features: int, use_bias: bool) -> Linear:
      return Linear(in_features, out_features, use_bias=use_bias, kernel_init=kernel_init,
                    kernel_metadata=kernel_metadata, **common)

    def dense_h(out_features: int, use_bias: bool) -> Linear:
      return Linear(hidden_features, out_features, use_bias=use_bias,
                    kernel_init=recurrent_kernel_init,
                    kernel_metadata=recurrent_kernel_metadata, **common)

    return dense_i, dense_h


def _lstm_update(gate_fn: Callable, activation_fn: Callable, c: jax.Array, i: jax.Array,
                 f: jax.Array, g: jax.Array, o: jax.Array) -> tuple[Carry, jax.Array]:
  """The LSTM state update from the four pre-activations."""
  new_c = gate_fn(f) * c + gate_fn(i) * activation_fn(g)
  new_h = gate_fn(o) * activation_fn(new_c)
  return (new_c, new_h), new_h


class LSTMCell(RNNCellBase):
  r"""Long short-term memory cell; the carry is ``(c, h)`` and the output ``h'``.

  .. math::
    i = \sigma(W_{ii} x + W_{hi} h + b_{hi}), \quad f = \sigma(W_{if} x + W_{hf} h + b_{hf}),
    g = \tanh(W_{ig} x + W_{hg} h + b_{hg}), \quad o = \sigma(W_{io} x + W_{ho} h + b_{ho}),
    c' = f c + i g, \quad h' = o \tanh(c')

  Submodules: Linear ``ii``, ``if_``, ``ig``, ``io`` (``in -> hidden``, no bias) and ``hi``,
  ``hf``, ``hg``, ``ho`` (``hidden -> hidden``, with bias).

  Args:
    in_features: size of the inputs' last axis.
    hidden_features: size of the carry and output.
    gate_fn: activation of the gates (default: sigmoid).
    activation_fn: activation of the candidate and output (default: tanh).
    kernel_init: initializer of the input kernels (default: lecun_normal).
    recurrent_kernel_init: initializer of the hidden kernels (default: orthogonal).
    bias_init: initializer of the biases (default: zeros).
    dtype: computation dtype; param_dtype: dtype of params and carry.
    carry_init: initializer of the carry (default: zeros).
    keep_rngs: keep ``rngs`` for :meth:`initialize_carry`.
    rngs: random streams (``params``).
    kernel_metadata, recurrent_kernel_metadata, bias_metadata: metadata of the Params.
  """

  _two_states = True

  def __init__(self, in_features: int, hidden_features: int, *,
               gate_fn: Callable[..., Any] = jax.nn.sigmoid,
               activation_fn: Callable[..., Any] = jnp.tanh,
               kernel_init: Initializer = default_kernel_init,
               recurrent_kernel_init: Initializer = default_recurrent_kernel_init,
               bias_init: Initializer = default_bias_init, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, carry_init: Initializer | None = None,
               keep_rngs: bool = False, rngs: Rngs,
               kernel_metadata: Mapping[str, Any] = NO_METADATA,
               recurrent_kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    dense_i, dense_h = self._common(
      hidden_features=hidden_features, kernel_init=kernel_init,
      recurrent_kernel_init=recurrent_kernel_init, bias_init=bias_init, dtype=dtype,
      param_dtype=param_dtype, carry_init=carry_init, keep_rngs=keep_rngs, rngs=rngs,
      kernel_metadata=kernel_metadata, recurrent_kernel_metadata=recurrent_kernel_metadata,
      bias_metadata=bias_metadata)
    self.in_features = in_features
    self.gate_fn = gate_fn
    self.activation_fn = activation_fn
    self.ii, self.if_, self.ig, self.io = (dense_i(in_features, hidden_features, False)
                                           for _ in range(4))
    self.hi, self.hf, self.hg, self.ho = (dense_h(hidden_features, True) for _ in range(4))

  def __call__(self, carry: tuple[jax.Array, jax.Array],
               inputs: jax.Array) -> tuple[Carry, jax.Array]:
    c, h = carry
    pre = [xi(inputs) + hi(h) for xi, hi in ((self.ii, self.hi), (self.if_, self.hf),
                                             (self.ig, self.hg), (self.io, self.ho))]
    return _lstm_update(self.gate_fn, self.activation_fn, c, *pre)


class OptimizedLSTMCell(RNNCellBase):
  """:class:`LSTMCell` with the four gates' kernels fused: one ``in -> 4 * hidden`` matmul
  of the inputs (``dense_i``, no bias) and one ``hidden -> 4 * hidden`` of the hidden state
  (``dense_h``, with bias) per step, gates in the order ``i, f, g, o``.

  Args: as in :class:`LSTMCell`.
  """

  _two_states = True

  def __init__(self, in_features: int, hidden_features: int, *,
               gate_fn: Callable[..., Any] = jax.nn.sigmoid,
               activation_fn: Callable[..., Any] = jnp.tanh,
               kernel_init: Initializer = default_kernel_init,
               recurrent_kernel_init: Initializer = default_recurrent_kernel_init,
               bias_init: Initializer = default_bias_init, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, carry_init: Initializer | None = None,
               keep_rngs: bool = False, rngs: Rngs,
               kernel_metadata: Mapping[str, Any] = NO_METADATA,
               recurrent_kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    dense_i, dense_h = self._common(
      hidden_features=hidden_features, kernel_init=kernel_init,
      recurrent_kernel_init=recurrent_kernel_init, bias_init=bias_init, dtype=dtype,
      param_dtype=param_dtype, carry_init=carry_init, keep_rngs=keep_rngs, rngs=rngs,
      kernel_metadata=kernel_metadata, recurrent_kernel_metadata=recurrent_kernel_metadata,
      bias_metadata=bias_metadata)
    self.in_features = in_features
    self.gate_fn = gate_fn
    self.activation_fn = activation_fn
    self.dense_i = dense_i(in_features, 4 * hidden_features, False)
    self.dense_h = dense_h(4 * hidden_features, True)

  def __call__(self, carry: tuple[jax.Array, jax.Array],
               inputs: jax.Array) -> tuple[Carry, jax.Array]:
    c, h = carry
    pre = jnp.split(self.dense_i(inputs) + self.dense_h(h), 4, axis=-1)
    return _lstm_update(self.gate_fn, self.activation_fn, c, *pre)


class GRUCell(RNNCellBase):
  r"""Gated recurrent unit; the carry and output are ``h'``.

  .. math::
    r = \sigma(W_{ir} x + b_{ir} + W_{hr} h), \quad z = \sigma(W_{iz} x + b_{iz} + W_{hz} h),
    n = \tanh(W_{in} x + b_{in} + r W_{hn} h), \quad h' = (1 - z) n + z h

  Submodules: ``dense_i`` (``in -> 3 * hidden``, with bias) and ``dense_h``
  (``hidden -> 3 * hidden``, no bias), gates in the order ``r, z, n``.

  Args: as in :class:`LSTMCell`.
  """

  def __init__(self, in_features: int, hidden_features: int, *,
               gate_fn: Callable[..., Any] = jax.nn.sigmoid,
               activation_fn: Callable[..., Any] = jnp.tanh,
               kernel_init: Initializer = default_kernel_init,
               recurrent_kernel_init: Initializer = default_recurrent_kernel_init,
               bias_init: Initializer = default_bias_init, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, carry_init: Initializer | None = None,
               keep_rngs: bool = False, rngs: Rngs,
               kernel_metadata: Mapping[str, Any] = NO_METADATA,
               recurrent_kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    dense_i, dense_h = self._common(
      hidden_features=hidden_features, kernel_init=kernel_init,
      recurrent_kernel_init=recurrent_kernel_init, bias_init=bias_init, dtype=dtype,
      param_dtype=param_dtype, carry_init=carry_init, keep_rngs=keep_rngs, rngs=rngs,
      kernel_metadata=kernel_metadata, recurrent_kernel_metadata=recurrent_kernel_metadata,
      bias_metadata=bias_metadata)
    self.in_features = in_features
    self.gate_fn = gate_fn
    self.activation_fn = activation_fn
    self.dense_i = dense_i(in_features, 3 * hidden_features, True)
    self.dense_h = dense_h(3 * hidden_features, False)

  def __call__(self, carry: jax.Array, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = carry
    x_r, x_z, x_n = jnp.split(self.dense_i(inputs), 3, axis=-1)
    h_r, h_z, h_n = jnp.split(self.dense_h(h), 3, axis=-1)
    r, z = self.gate_fn(x_r + h_r), self.gate_fn(x_z + h_z)
    n = self.activation_fn(x_n + r * h_n)
    new_h = (1.0 - z) * n + z * h
    return new_h, new_h


class SimpleCell(RNNCellBase):
  r"""Elman cell: :math:`h' = \tanh(W_i x + W_h h + b_h)` (plus ``h`` inside the activation
  when ``residual``); the carry and output are ``h'``.

  Submodules: ``dense_i`` (``in -> hidden``, no bias), ``dense_h`` (``hidden -> hidden``,
  with bias).

  Args:
    in_features, hidden_features, kernel_init, recurrent_kernel_init, bias_init, dtype,
      param_dtype, carry_init, keep_rngs, rngs, kernel_metadata, recurrent_kernel_metadata,
      bias_metadata: as in :class:`LSTMCell`.
    residual: add ``h`` before the activation.
    activation_fn: the activation (default: tanh).
  """

  def __init__(self, in_features: int, hidden_features: int, *, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, carry_init: Initializer | None = None,
               residual: bool = False, activation_fn: Callable[..., Any] = jnp.tanh,
               kernel_init: Initializer = default_kernel_init,
               recurrent_kernel_init: Initializer = default_recurrent_kernel_init,
               bias_init: Initializer = default_bias_init, keep_rngs: bool = False,
               rngs: Rngs, kernel_metadata: Mapping[str, Any] = NO_METADATA,
               recurrent_kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    dense_i, dense_h = self._common(
      hidden_features=hidden_features, kernel_init=kernel_init,
      recurrent_kernel_init=recurrent_kernel_init, bias_init=bias_init, dtype=dtype,
      param_dtype=param_dtype, carry_init=carry_init, keep_rngs=keep_rngs, rngs=rngs,
      kernel_metadata=kernel_metadata, recurrent_kernel_metadata=recurrent_kernel_metadata,
      bias_metadata=bias_metadata)
    self.in_features = in_features
    self.residual = residual
    self.activation_fn = activation_fn
    self.dense_h = dense_h(hidden_features, True)
    self.dense_i = dense_i(in_features, hidden_features, False)

  def __call__(self, carry: jax.Array, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = self.dense_i(inputs) + self.dense_h(carry)
    if self.residual:
      x = x + carry
    new_h = self.activation_fn(x)
    return new_h, new_h


class RNN(Module):
  """Applies a cell over the time axis of ``(*batch, time, features)`` inputs.

  Args:
    cell: the cell (a submodule ``cell``); its params are shared by every step.
    time_major: inputs are ``(time, *batch, features)``.
    return_carry: return ``(final_carry, outputs)`` instead of the outputs only.
    reverse: process each sequence from its last valid step to its first; the outputs are
      in processing order unless ``keep_order``.
    keep_order: with ``reverse``, flip the outputs back to the input order.
    unroll: scan steps unrolled per loop iteration.
  """

  def __init__(self, cell: RNNCellBase, *, time_major: bool = False,
               return_carry: bool = False, reverse: bool = False, keep_order: bool = False,
               unroll: int = 1):
    self.cell = cell
    self.time_major = time_major
    self.return_carry = return_carry
    self.reverse = reverse
    self.keep_order = keep_order
    self.unroll = unroll

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
      rngs: passed to ``initialize_carry``.

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
      initial_carry = self.cell.initialize_carry(step_shape, rngs)

    keep_carries = seq_lengths is not None and return_carry
    graphdef, state = split(self.cell)

    def step(loop: tuple[Carry, Any], x: jax.Array) -> tuple[tuple[Carry, Any], Any]:
      carry, state = loop
      cell = merge(graphdef, state)
      carry, y = cell(carry, x)
      return (carry, split(cell)[1]), ((carry, y) if keep_carries else y)

    (carry, state), outputs = jax.lax.scan(step, (initial_carry, state),
                                           jnp.moveaxis(inputs, time_axis, 0),
                                           unroll=self.unroll)
    update(self.cell, state)
    if keep_carries:
      carries, outputs = outputs
      carry = last_valid(carries, seq_lengths)
    outputs = jax.tree.map(lambda y: jnp.moveaxis(y, 0, time_axis), outputs)
    if reverse and keep_order:
      outputs = flip(outputs)
    return (carry, outputs) if return_carry else outputs


def _concatenate(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.concatenate([a, b], axis=-1)


class Bidirectional(Module):
  """Runs one RNN forwards and another backwards over the same inputs and merges their
  outputs (the backward outputs in input order).

  Args:
    forward_rnn, backward_rnn: :class:`RNN` modules.
    merge_fn: combines the two outputs (default: concatenation along the last axis).
    time_major: inputs are ``(time, *batch, features)``.
    return_carry: return ``((forward_carry, backward_carry), outputs)``.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> cell = lambda seed: nnx.GRUCell(3, 4, rngs=nnx.Rngs(seed))
  >>> bi = nnx.Bidirectional(nnx.RNN(cell(0)), nnx.RNN(cell(1)))
  >>> bi(jnp.ones((2, 5, 3))).shape
  (2, 5, 8)
  """

  def __init__(self, forward_rnn: RNN, backward_rnn: RNN, *,
               merge_fn: Callable[[Any, Any], Any] = _concatenate, time_major: bool = False,
               return_carry: bool = False):
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
    common = dict(rngs=rngs, seq_lengths=seq_lengths, return_carry=True, time_major=time_major)
    carry_fw, out_fw = self.forward_rnn(inputs, initial_carry=carry_fw, reverse=False,
                                        **common)
    carry_bw, out_bw = self.backward_rnn(inputs, initial_carry=carry_bw, reverse=True,
                                         keep_order=True, **common)
    outputs = jax.tree.map(self.merge_fn, out_fw, out_bw)
    return ((carry_fw, carry_bw), outputs) if return_carry else outputs
