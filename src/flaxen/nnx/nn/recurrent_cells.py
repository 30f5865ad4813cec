"""Recurrent cells of NNX: LSTMCell, OptimizedLSTMCell, GRUCell and SimpleCell.

A cell maps ``(carry, inputs) -> (new_carry, output)`` for one time step; its linear maps
are :class:`~flaxen.nnx.Linear` submodules. :class:`~flaxen.nnx.RNN` runs one over a
sequence.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> cell = nnx.LSTMCell(3, 4, rngs=nnx.Rngs(0))
>>> carry = cell.initialize_carry((2, 3))
>>> (c, h), y = cell(carry, jnp.ones((2, 3)))
>>> y.shape
(2, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from flaxen import initializers
from flaxen.errors.layers import CarryShapeError
from flaxen.nnx.module import Module
from flaxen.nnx.nn.defaults import NO_METADATA, default_bias_init, default_kernel_init
from flaxen.nnx.nn.dtypes import promote_dtype as default_promote_dtype
from flaxen.nnx.nn.linear import Linear
from flaxen.nnx.rnglib import Rngs
from flaxen.ops import recurrent as ops
from flaxen.typing import Dtype, Initializer, PromoteDtypeFn

__all__ = ["GRUCell", "LSTMCell", "OptimizedLSTMCell", "RNNCellBase", "SimpleCell"]

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

  def __call__(self, carry: Carry, inputs: jax.Array) -> tuple[Carry, Any]:
    """One step: ``(new_carry, output)``; subclasses define it."""
    raise NotImplementedError(f"{type(self).__name__} must define __call__(carry, inputs)")

  @property
  def num_feature_axes(self) -> int:
    return 1

  def _check_carry(self, carry: Carry, inputs: jax.Array) -> None:
    """Raises :class:`CarryShapeError` unless every carry array is ``(*batch, hidden)``."""
    expected = (*jnp.shape(inputs)[:-1], self.hidden_features)
    for part in jax.tree.leaves(carry):
      if jnp.shape(part) != expected:
        raise CarryShapeError(type(self).__name__, expected, jnp.shape(part), jnp.shape(inputs))

  def _common(self, *, in_features: int, hidden_features: int, kernel_init: Initializer,
              recurrent_kernel_init: Initializer, bias_init: Initializer,
              dtype: Dtype | None, param_dtype: Dtype, carry_init: Initializer | None,
              keep_rngs: bool, rngs: Rngs, kernel_metadata: Mapping[str, Any],
              promote_dtype: PromoteDtypeFn = default_promote_dtype,
              recurrent_kernel_metadata: Mapping[str, Any], bias_metadata: Mapping[str, Any],
              ) -> tuple[Callable[..., Linear], Callable[..., Linear]]:
    """Stores the shared attributes; returns factories of input and recurrent Linears."""
    self.hidden_features = hidden_features
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.carry_init = default_carry_init if carry_init is None else carry_init
    self.rngs = rngs if keep_rngs else None
    self.promote_dtype = promote_dtype
    self.in_features = in_features
    common = dict(dtype=dtype, param_dtype=param_dtype, bias_init=bias_init, rngs=rngs,
                  promote_dtype=promote_dtype,
                  bias_metadata=bias_metadata)

    def dense_i(in_features: int, out_features: int, use_bias: bool) -> Linear:
      return Linear(in_features, out_features, use_bias=use_bias, kernel_init=kernel_init,
                    kernel_metadata=kernel_metadata, **common)

    def dense_h(out_features: int, use_bias: bool) -> Linear:
      return Linear(hidden_features, out_features, use_bias=use_bias,
                    kernel_init=recurrent_kernel_init,
                    kernel_metadata=recurrent_kernel_metadata, **common)

    return dense_i, dense_h


class _GatedCell(RNNCellBase):
  """The constructor shared by LSTMCell, OptimizedLSTMCell and GRUCell; subclasses create
  their Linears in ``_build``."""

  def __init__(self, in_features: int, hidden_features: int, *,
               gate_fn: Callable[..., Any] = jax.nn.sigmoid,
               activation_fn: Callable[..., Any] = jnp.tanh,
               kernel_init: Initializer = default_kernel_init,
               recurrent_kernel_init: Initializer = default_recurrent_kernel_init,
               bias_init: Initializer = default_bias_init, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, carry_init: Initializer | None = None,
               promote_dtype: PromoteDtypeFn = default_promote_dtype,
               keep_rngs: bool = False, rngs: Rngs,
               kernel_metadata: Mapping[str, Any] = NO_METADATA,
               recurrent_kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    dense_i, dense_h = self._common(
      in_features=in_features, hidden_features=hidden_features, kernel_init=kernel_init,
      recurrent_kernel_init=recurrent_kernel_init, bias_init=bias_init, dtype=dtype,
      param_dtype=param_dtype, carry_init=carry_init, keep_rngs=keep_rngs, rngs=rngs,
      promote_dtype=promote_dtype,
      kernel_metadata=kernel_metadata, recurrent_kernel_metadata=recurrent_kernel_metadata,
      bias_metadata=bias_metadata)
    self.gate_fn = gate_fn
    self.activation_fn = activation_fn
    self._build(dense_i, dense_h)

  def _build(self, dense_i: Callable[..., Linear], dense_h: Callable[..., Linear]) -> None:
    raise NotImplementedError


class LSTMCell(_GatedCell):
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
    promote_dtype: the ``promote_dtype`` rule of the cell's Linears.
    keep_rngs: keep ``rngs`` for :meth:`initialize_carry`.
    rngs: random streams (``params``).
    kernel_metadata, recurrent_kernel_metadata, bias_metadata: metadata of the Params.
  """

  _two_states = True

  def _build(self, dense_i: Callable[..., Linear], dense_h: Callable[..., Linear]) -> None:
    n_in, n_h = self.in_features, self.hidden_features
    self.ii, self.if_, self.ig, self.io = (dense_i(n_in, n_h, False) for _ in range(4))
    self.hi, self.hf, self.hg, self.ho = (dense_h(n_h, True) for _ in range(4))

  def __call__(self, carry: tuple[jax.Array, jax.Array],
               inputs: jax.Array) -> tuple[Carry, jax.Array]:
    self._check_carry(carry, inputs)
    c, h = carry
    pre = [xi(inputs) + hi(h) for xi, hi in ((self.ii, self.hi), (self.if_, self.hf),
                                             (self.ig, self.hg), (self.io, self.ho))]
    new_c, new_h = ops.lstm_step(*pre, c, gate_fn=self.gate_fn,
                                 activation_fn=self.activation_fn)
    return (new_c, new_h), new_h


class OptimizedLSTMCell(_GatedCell):
  """:class:`LSTMCell` with the four gates' kernels fused: one ``in -> 4 * hidden`` matmul
  of the inputs (``dense_i``, no bias) and one ``hidden -> 4 * hidden`` of the hidden state
  (``dense_h``, with bias) per step, gates in the order ``i, f, g, o``.

  Args: as in :class:`LSTMCell`.
  """

  _two_states = True

  def _build(self, dense_i: Callable[..., Linear], dense_h: Callable[..., Linear]) -> None:
    self.dense_i = dense_i(self.in_features, 4 * self.hidden_features, False)
    self.dense_h = dense_h(4 * self.hidden_features, True)

  def __call__(self, carry: tuple[jax.Array, jax.Array],
               inputs: jax.Array) -> tuple[Carry, jax.Array]:
    self._check_carry(carry, inputs)
    c, h = carry
    pre = jnp.split(self.dense_i(inputs) + self.dense_h(h), 4, axis=-1)
    new_c, new_h = ops.lstm_step(*pre, c, gate_fn=self.gate_fn,
                                 activation_fn=self.activation_fn)
    return (new_c, new_h), new_h


class GRUCell(_GatedCell):
  r"""Gated recurrent unit; the carry and output are ``h'``.

  .. math::
    r = \sigma(W_{ir} x + b_{ir} + W_{hr} h), \quad z = \sigma(W_{iz} x + b_{iz} + W_{hz} h),
    n = \tanh(W_{in} x + b_{in} + r W_{hn} h), \quad h' = (1 - z) n + z h

  Submodules: ``dense_i`` (``in -> 3 * hidden``, with bias) and ``dense_h``
  (``hidden -> 3 * hidden``, no bias), gates in the order ``r, z, n``.

  Args: as in :class:`LSTMCell`.
  """

  def _build(self, dense_i: Callable[..., Linear], dense_h: Callable[..., Linear]) -> None:
    self.dense_i = dense_i(self.in_features, 3 * self.hidden_features, True)
    self.dense_h = dense_h(3 * self.hidden_features, False)

  def __call__(self, carry: jax.Array, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
    self._check_carry(carry, inputs)
    h = carry
    new_h = ops.gru_step(jnp.split(self.dense_i(inputs), 3, axis=-1),
                         jnp.split(self.dense_h(h), 3, axis=-1), h, gate_fn=self.gate_fn,
                         activation_fn=self.activation_fn)
    return new_h, new_h


class SimpleCell(RNNCellBase):
  r"""Elman cell: :math:`h' = \tanh(W_i x + b_i + W_h h)` (plus ``h`` inside the activation
  when ``residual``); the carry and output are ``h'``.

  Submodules: ``dense_i`` (``in -> hidden``, with bias), ``dense_h`` (``hidden -> hidden``,
  no bias), as in Flax (and Linen's ``i`` / ``h``).

  Args:
    in_features, hidden_features, kernel_init, recurrent_kernel_init, bias_init, dtype,
      param_dtype, carry_init, promote_dtype, keep_rngs, rngs, kernel_metadata,
      recurrent_kernel_metadata, bias_metadata: as in :class:`LSTMCell`.
    residual: add ``h`` before the activation.
    activation_fn: the activation (default: tanh).
  """

  def __init__(self, in_features: int, hidden_features: int, *, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, carry_init: Initializer | None = None,
               residual: bool = False, activation_fn: Callable[..., Any] = jnp.tanh,
               kernel_init: Initializer = default_kernel_init,
               recurrent_kernel_init: Initializer = default_recurrent_kernel_init,
               bias_init: Initializer = default_bias_init,
               promote_dtype: PromoteDtypeFn = default_promote_dtype, keep_rngs: bool = False,
               rngs: Rngs, kernel_metadata: Mapping[str, Any] = NO_METADATA,
               recurrent_kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    dense_i, dense_h = self._common(
      in_features=in_features, hidden_features=hidden_features, kernel_init=kernel_init,
      recurrent_kernel_init=recurrent_kernel_init, bias_init=bias_init, dtype=dtype,
      param_dtype=param_dtype, carry_init=carry_init, keep_rngs=keep_rngs, rngs=rngs,
      promote_dtype=promote_dtype,
      kernel_metadata=kernel_metadata, recurrent_kernel_metadata=recurrent_kernel_metadata,
      bias_metadata=bias_metadata)
    self.residual = residual
    self.activation_fn = activation_fn
    self.dense_h = dense_h(hidden_features, False)
    self.dense_i = dense_i(in_features, hidden_features, True)

  def __call__(self, carry: jax.Array, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
    self._check_carry(carry, inputs)
    new_h = ops.simple_step(self.dense_i(inputs), self.dense_h(carry), carry,
                            activation_fn=self.activation_fn, residual=self.residual)
    return new_h, new_h
