"""Recurrent cells: one time step ``(carry, x) -> (new_carry, y)`` of an RNN.

Every cell names its params as Flax does (e.g. ``ii``/``hi``... for LSTMCell), so variables
move between the two libraries unchanged. ``initialize_carry(rng, input_shape)`` builds the
carry for inputs of ``input_shape`` (one time step); :class:`~flaxen.linen.RNN` scans a cell
over a sequence.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> cell = nn.GRUCell(features=4)
>>> x = jnp.ones((2, 3))
>>> carry = cell.initialize_carry(jax.random.key(0), x.shape)
>>> variables = cell.init(jax.random.key(1), carry, x)
>>> new_carry, y = cell.apply(variables, carry, x)
>>> y.shape, sorted(variables["params"])
((2, 4), ['hn', 'hr', 'hz', 'in', 'ir', 'iz'])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from flaxen import initializers
from flaxen.errors.layers import CarryShapeError
from flaxen.linen.linear import Conv, Dense, default_kernel_init
from flaxen.linen.module import Module, compact, nowrap
from flaxen.linen.param_checks import check_in_features, layer_name
from flaxen.ops import linear as linear_ops
from flaxen.ops import recurrent as ops
from flaxen.ops.activations import sigmoid, tanh
from flaxen.typing import Array, Dtype, Initializer, PaddingLike, PRNGKey

__all__ = [
  "RNNCellBase", "LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell", "MGUCell",
  "ConvLSTMCell",
]

Carry = Any


class RNNCellBase(Module):
  """Base class of recurrent cells: ``__call__(carry, inputs) -> (new_carry, output)``."""

  @nowrap
  def initialize_carry(self, rng: PRNGKey, input_shape: tuple[int, ...]) -> Carry:
    """The initial carry for one time step of inputs of shape ``input_shape``.

    Args:
      rng: key for ``carry_init`` (most cells start from zeros and ignore it).
      input_shape: shape of the cell's input, ``(*batch, *features)``.
    """
    raise NotImplementedError(f"{type(self).__name__} does not define initialize_carry.")

  @property
  def num_feature_axes(self) -> int:
    """How many trailing input axes are features (the others are batch and time)."""
    raise NotImplementedError(f"{type(self).__name__} does not define num_feature_axes.")


def _init_carry(cell: Any, rng: PRNGKey, input_shape: Sequence[int], two_states: bool) -> Carry:
  """``carry_init`` states of shape ``(*input_shape[:-1], features)``: ``h``, or ``(c, h)``."""
  shape = (*input_shape[:-1], cell.features)
  if not two_states:
    return cell.carry_init(rng, shape, cell.param_dtype)
  return tuple(cell.carry_init(key, shape, cell.param_dtype) for key in jax.random.split(rng))


class _DenseCell(RNNCellBase):
  """Carry construction and checks shared by the cells whose state is ``(*batch, features)``.

  Subclasses have the fields ``features``, ``carry_init`` and ``param_dtype``; an LSTM
  carries two states ``(c, h)``, the others one.
  """

  _two_states = False

  @nowrap
  def initialize_carry(self, rng: PRNGKey, input_shape: tuple[int, ...]) -> Carry:
    return _init_carry(self, rng, input_shape, self._two_states)

  @property
  def num_feature_axes(self) -> int:
    return 1

  def _check_carry(self, carry: Carry, inputs: Array) -> None:
    expected = (*jnp.shape(inputs)[:-1], self.features)  # type: ignore[attr-defined]
    for state in carry if self._two_states else (carry,):
      if jnp.shape(state) != expected:
        raise CarryShapeError(layer_name(self), expected, jnp.shape(state), jnp.shape(inputs))


_GATE_DOC = """
  Attributes:
    features: number of output features (the size of the hidden state).
    gate_fn: activation of the gates (default: sigmoid).
    activation_fn: activation of the candidate state and output (default: tanh).
    kernel_init: initializer of the kernels applied to the input (default: lecun_normal).
    recurrent_kernel_init: initializer of the kernels applied to the hidden state
      (default: orthogonal).
    bias_init: initializer of the biases (default: zeros).
    dtype: computation dtype (default: inferred from inputs and params).
    param_dtype: dtype of the params and of the initial carry.
    carry_init: initializer of the carry (default: zeros).
"""


class _GatedCell(_DenseCell):
  """The fields of LSTMCell, OptimizedLSTMCell and GRUCell (in Flax's order)."""

  features: int
  gate_fn: Callable[..., Any] = sigmoid
  activation_fn: Callable[..., Any] = tanh
  kernel_init: Initializer = default_kernel_init
  recurrent_kernel_init: Initializer = initializers.orthogonal()
  bias_init: Initializer = initializers.zeros_init()
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  carry_init: Initializer = initializers.zeros_init()

  def _dense(self, name: str, use_bias: bool, recurrent: bool) -> Dense:
    init = self.recurrent_kernel_init if recurrent else self.kernel_init
    return Dense(self.features, use_bias=use_bias, dtype=self.dtype,
                 param_dtype=self.param_dtype, kernel_init=init, bias_init=self.bias_init,
                 name=name)


class LSTMCell(_GatedCell):
  r"""Long short-term memory cell; the carry is ``(c, h)``.

  .. math::
    i = \sigma(W_{ii} x + W_{hi} h + b_{hi}), \quad f = \sigma(W_{if} x + W_{hf} h + b_{hf}),
    g = \tanh(W_{ig} x + W_{hg} h + b_{hg}), \quad o = \sigma(W_{io} x + W_{ho} h + b_{ho}),
    c' = f c + i g, \quad h' = o \tanh(c')

  Params: Dense ``ii``, ``if``, ``ig``, ``io`` (kernels only) and ``hi``, ``hf``, ``hg``,
  ``ho`` (kernel and bias). The output is ``h'``.
  """ + _GATE_DOC

  _two_states = True

  @compact
  def __call__(self, carry: tuple[Array, Array], inputs: Array) -> tuple[Carry, Array]:
    self._check_carry(carry, inputs)
    c, h = carry

    def pre(gate: str) -> Array:  # only the recurrent half needs a bias: they are summed
      return self._dense(f"i{gate}", False, False)(inputs) + self._dense(f"h{gate}", True, True)(h)

    new_c, new_h = ops.lstm_step(*(pre(gate) for gate in "ifgo"), c, gate_fn=self.gate_fn,
                                 activation_fn=self.activation_fn)
    return (new_c, new_h), new_h


class _DenseParams(Module):
  """Creates a Dense layer's ``kernel`` (and ``bias``) without applying them."""

  features: int
  use_bias: bool
  param_dtype: Dtype
  kernel_init: Initializer
  bias_init: Initializer

  @compact
  def __call__(self, inputs: Array) -> tuple[Array, Array | None]:
    shape = (jnp.shape(inputs)[-1], self.features)
    check_in_features(self, "kernel", shape, (0,), jnp.shape(inputs))
    kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    return kernel, bias


class OptimizedLSTMCell(_GatedCell):
  """:class:`LSTMCell` computed with one matmul per step: ``[x, h]`` times the eight kernels
  stacked into one ``(in + features, 4 * features)`` matrix.

  Same params (names, shapes, initializers), same math and same carry as :class:`LSTMCell`,
  so variables are interchangeable between the two.
  """ + _GATE_DOC

  _two_states = True

  @compact
  def __call__(self, carry: tuple[Array, Array], inputs: Array) -> tuple[Carry, Array]:
    self._check_carry(carry, inputs)
    c, h = carry
    kernels_i, kernels_h, biases = [], [], []
    for gate in "ifgo":
      k_i, _ = _DenseParams(self.features, False, self.param_dtype, self.kernel_init,
                            self.bias_init, name=f"i{gate}")(inputs)
      k_h, b_h = _DenseParams(self.features, True, self.param_dtype, self.recurrent_kernel_init,
                              self.bias_init, name=f"h{gate}")(h)
      kernels_i.append(k_i)
      kernels_h.append(k_h)
      biases.append(b_h)
    kernel = jnp.concatenate(
      [jnp.concatenate(kernels_i, axis=-1), jnp.concatenate(kernels_h, axis=-1)], axis=0)
    xh = jnp.concatenate([inputs, h], axis=-1)
    y = linear_ops.dense(xh, kernel, jnp.concatenate(biases), dtype=self.dtype,
                         where=layer_name(self))
    new_c, new_h = ops.lstm_step(*jnp.split(y, 4, axis=-1), c, gate_fn=self.gate_fn,
                                 activation_fn=self.activation_fn)
    return (new_c, new_h), new_h


class GRUCell(_GatedCell):
  r"""Gated recurrent unit; the carry is ``h``.

  .. math::
    r = \sigma(W_{ir} x + b_{ir} + W_{hr} h), \quad z = \sigma(W_{iz} x + b_{iz} + W_{hz} h),
    n = \tanh(W_{in} x + b_{in} + r (W_{hn} h + b_{hn})), \quad h' = (1 - z) n + z h

  Params: Dense ``ir``, ``iz``, ``in`` (kernel and bias), ``hr``, ``hz`` (kernels only) and
  ``hn`` (kernel and bias: the reset gate scales it, so its bias is not redundant).
  """ + _GATE_DOC

  @compact
  def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
    self._check_carry(carry, inputs)
    h = carry
    # params in Flax's order: ir, hr, iz, hz, in, hn
    x_r, h_r = self._dense("ir", True, False)(inputs), self._dense("hr", False, True)(h)
    x_z, h_z = self._dense("iz", True, False)(inputs), self._dense("hz", False, True)(h)
    x_n, h_n = self._dense("in", True, False)(inputs), self._dense("hn", True, True)(h)
    new_h = ops.gru_step((x_r, x_z, x_n), (h_r, h_z, h_n), h, gate_fn=self.gate_fn,
                         activation_fn=self.activation_fn)
    return new_h, new_h


class SimpleCell(_DenseCell):
  r"""Elman cell: :math:`h' = \tanh(W_i x + b_i + W_h h)` (plus ``h`` inside the activation
  when ``residual``); the carry and the output are ``h'``.

  Params: Dense ``i`` (kernel and bias) and ``h`` (kernel only).

  Attributes:
    features: number of output features.
    activation_fn: the activation (default: tanh).
    kernel_init, recurrent_kernel_init, bias_init, dtype, param_dtype, carry_init: as in
      :class:`LSTMCell`.
    residual: add ``h`` before the activation (pre-activation residual connection).
  """

  features: int
  activation_fn: Callable[..., Any] = tanh
  kernel_init: Initializer = default_kernel_init
  recurrent_kernel_init: Initializer = initializers.orthogonal()
  bias_init: Initializer = initializers.zeros_init()
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  carry_init: Initializer = initializers.zeros_init()
  residual: bool = False

  @compact
  def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
    self._check_carry(carry, inputs)
    common = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = Dense(self.features, kernel_init=self.kernel_init, bias_init=self.bias_init,
              name="i", **common)(inputs)
    hp = Dense(self.features, use_bias=False, kernel_init=self.recurrent_kernel_init,
               name="h", **common)(carry)
    new_h = ops.simple_step(x, hp, carry, activation_fn=self.activation_fn,
                            residual=self.residual)
    return new_h, new_h


class MGUCell(_DenseCell):
  r"""Minimal gated unit (https://arxiv.org/abs/1603.09420); the carry is ``h``.

  .. math::
    f = \sigma(W_{if} x + b_{if} + W_{hf} h), \quad
    n = \tanh(W_{in} x + b_{in} + f (W_{hn} h + b_{hn})), \quad h' = (1 - f) n + f h

  Without ``reset_gate``, ``n = tanh(W_in x + b_in + W_hn h)`` and ``hn`` has no bias.
  Params: Dense ``if``, ``in`` (kernel and bias), ``hf`` (kernel), ``hn`` (kernel, bias).

  Attributes:
    features, gate_fn, activation_fn, kernel_init, recurrent_kernel_init, dtype,
      param_dtype, carry_init: as in :class:`LSTMCell`.
    forget_bias_init: initializer of the gate's bias ``b_if`` (default: ones, which keeps
      more of ``h`` early in training).
    activation_bias_init: initializer of ``b_in`` and ``b_hn`` (default: zeros).
    reset_gate: whether the gate scales the recurrent term of ``n``.
  """

  features: int
  gate_fn: Callable[..., Any] = sigmoid
  activation_fn: Callable[..., Any] = tanh
  kernel_init: Initializer = default_kernel_init
  recurrent_kernel_init: Initializer = initializers.orthogonal()
  forget_bias_init: Initializer = initializers.ones_init()
  activation_bias_init: Initializer = initializers.zeros_init()
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  carry_init: Initializer = initializers.zeros_init()
  reset_gate: bool = True

  @compact
  def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
    self._check_carry(carry, inputs)
    h = carry
    common = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    dense_i = dict(kernel_init=self.kernel_init, **common)
    dense_h = dict(kernel_init=self.recurrent_kernel_init, bias_init=self.activation_bias_init,
                   **common)
    x_f = Dense(self.features, bias_init=self.forget_bias_init, name="if", **dense_i)(inputs)
    h_f = Dense(self.features, use_bias=False, name="hf", **dense_h)(h)
    h_n = Dense(self.features, use_bias=self.reset_gate, name="hn", **dense_h)(h)
    x_n = Dense(self.features, bias_init=self.activation_bias_init, name="in", **dense_i)(inputs)
    new_h = ops.mgu_step(x_f, h_f, x_n, h_n, h, gate_fn=self.gate_fn,
                         activation_fn=self.activation_fn, reset_gate=self.reset_gate)
    return new_h, new_h


class ConvLSTMCell(RNNCellBase):
  r"""Convolutional LSTM (Shi et al. 2015): an LSTM whose matmuls are convolutions over the
  spatial dims; inputs are ``(*batch, *spatial, in_features)`` and the carry is ``(c, h)``,
  each ``(*batch, *spatial, features)``.

  The gates are ``i, g, f, o = split(Conv_ih(x) + Conv_hh(h), 4)`` with
  ``c' = σ(f + 1) c + σ(i) tanh(g)`` and ``h' = σ(o) tanh(c')`` (the +1 on the forget gate
  keeps more of ``c`` early in training). Params: Conv ``ih`` and ``hh``, each with
  ``4 * features`` filters.

  Attributes:
    features: number of filters of each state.
    kernel_size: one size per spatial dim.
    strides: strides of both convolutions (default 1).
    padding: padding of both convolutions (default 'SAME').
    use_bias: whether the convolutions have a bias.
    dtype, param_dtype, carry_init: as in :class:`LSTMCell`.
  """

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] | None = None
  padding: PaddingLike = "SAME"
  use_bias: bool = True
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  carry_init: Initializer = initializers.zeros_init()

  @compact
  def __call__(self, carry: tuple[Array, Array], inputs: Array) -> tuple[Carry, Array]:
    c, h = carry
    for state in carry:
      if jnp.ndim(state) != jnp.ndim(inputs) or jnp.shape(state)[-1] != self.features:
        expected = (*jnp.shape(inputs)[:-1], self.features)
        raise CarryShapeError(layer_name(self), expected, jnp.shape(state), jnp.shape(inputs))

    def conv(name: str) -> Conv:
      return Conv(4 * self.features, self.kernel_size, strides=self.strides,
                  padding=self.padding, use_bias=self.use_bias, dtype=self.dtype,
                  param_dtype=self.param_dtype, name=name)

    i, g, f, o = jnp.split(conv("ih")(inputs) + conv("hh")(h), 4, axis=-1)
    new_c, new_h = ops.lstm_step(i, f + 1, g, o, c, gate_fn=sigmoid, activation_fn=tanh)
    return (new_c, new_h), new_h

  @nowrap
  def initialize_carry(self, rng: PRNGKey, input_shape: tuple[int, ...]) -> Carry:
    return _init_carry(self, rng, input_shape, two_states=True)

  @property
  def num_feature_axes(self) -> int:
    return len(self.kernel_size) + 1
