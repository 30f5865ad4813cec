"""Recurrent cells against hand-written steps; RNN and Bidirectional against Python loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors

KEY = jax.random.key(0)
B, T, IN, F = 2, 5, 3, 4


def _x(shape=(B, IN), seed=1):
  return jax.random.normal(jax.random.key(seed), shape)


def _random_carry(cell, x, seed=2):
  """A non-zero carry of the cell's shape, so the recurrent terms matter."""
  carry = cell.initialize_carry(KEY, x.shape)
  keys = iter(jax.random.split(jax.random.key(seed), 2))
  return jax.tree.map(lambda c: jax.random.normal(next(keys), c.shape), carry)


def _init(cell, carry, x):
  params = cell.init(KEY, carry, x)["params"]
  # Non-zero biases everywhere, so a bias applied in the wrong place shows up.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(3), len(leaves))
  return jax.tree.unflatten(tree, [v + 0.1 * jax.random.normal(k, v.shape)
                                   for v, k in zip(leaves, keys, strict=True)])


def _lin(p, x):
  return x @ p["kernel"] + p.get("bias", 0.0)


def _lstm_ref(p, carry, x):
  c, h = carry
  sig = jax.nn.sigmoid
  i = sig(_lin(p["ii"], x) + _lin(p["hi"], h))
  f = sig(_lin(p["if"], x) + _lin(p["hf"], h))
  g = jnp.tanh(_lin(p["ig"], x) + _lin(p["hg"], h))
  o = sig(_lin(p["io"], x) + _lin(p["ho"], h))
  new_c = f * c + i * g
  new_h = o * jnp.tanh(new_c)
  return (new_c, new_h), new_h


def _gru_ref(p, h, x):
  sig = jax.nn.sigmoid
  r = sig(_lin(p["ir"], x) + _lin(p["hr"], h))
  z = sig(_lin(p["iz"], x) + _lin(p["hz"], h))
  n = jnp.tanh(_lin(p["in"], x) + r * _lin(p["hn"], h))
  new_h = (1 - z) * n + z * h
  return new_h, new_h


def _simple_ref(p, h, x, residual=False):
  pre = _lin(p["i"], x) + _lin(p["h"], h) + (h if residual else 0.0)
  return jnp.tanh(pre), jnp.tanh(pre)


def _mgu_ref(p, h, x, reset_gate=True):
  f = jax.nn.sigmoid(_lin(p["if"], x) + _lin(p["hf"], h))
  rec = _lin(p["hn"], h)
  n = jnp.tanh(_lin(p["in"], x) + (f * rec if reset_gate else rec))
  new_h = (1 - f) * n + f * h
  return new_h, new_h


def _close(a, b):
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5), a, b)


CELLS = [
  (nn.LSTMCell(F), _lstm_ref),
  (nn.OptimizedLSTMCell(F), _lstm_ref),
  (nn.GRUCell(F), _gru_ref),
  (nn.SimpleCell(F), _simple_ref),
  (nn.SimpleCell(F, residual=True), lambda p, h, x: _simple_ref(p, h, x, residual=True)),
  (nn.MGUCell(F), _mgu_ref),
  (nn.MGUCell(F, reset_gate=False), lambda p, h, x: _mgu_ref(p, h, x, reset_gate=False)),
]


@pytest.mark.parametrize("cell,ref", CELLS, ids=lambda c: getattr(c, "__name__", None))
def test_cell_step_matches_reference(cell, ref):
  x = _x()
  carry = _random_carry(cell, x)
  params = _init(cell, carry, x)
  _close(cell.apply({"params": params}, carry, x), ref(params, carry, x))


def test_param_layouts_and_defaults():
  x = _x()
  shapes = lambda cell: jax.tree.map(  # noqa: E731
    jnp.shape, cell.init(KEY, cell.initialize_carry(KEY, x.shape), x)["params"])
  lstm = shapes(nn.LSTMCell(F))
  assert set(lstm) == {"ii", "if", "ig", "io", "hi", "hf", "hg", "ho"}
  assert lstm["ii"] == {"kernel": (IN, F)} and lstm["hi"] == {"kernel": (F, F), "bias": (F,)}
  assert shapes(nn.OptimizedLSTMCell(F)) == lstm
  gru = shapes(nn.GRUCell(F))
  assert gru["ir"] == {"kernel": (IN, F), "bias": (F,)} and gru["hr"] == {"kernel": (F, F)}
  assert gru["hn"] == {"kernel": (F, F), "bias": (F,)}
  assert shapes(nn.SimpleCell(F)) == {"i": {"kernel": (IN, F), "bias": (F,)},
                                      "h": {"kernel": (F, F)}}
  assert "bias" not in shapes(nn.MGUCell(F, reset_gate=False))["hn"]
  # Defaults: zero biases (MGU's forget gate: ones), orthogonal recurrent kernels.
  mgu = nn.MGUCell(F).init(KEY, jnp.zeros((B, F)), x)["params"]
  np.testing.assert_array_equal(mgu["if"]["bias"], 1.0)
  np.testing.assert_array_equal(mgu["in"]["bias"], 0.0)
  hk = nn.LSTMCell(F).init(KEY, (jnp.zeros((B, F)),) * 2, x)["params"]["hi"]["kernel"]
  np.testing.assert_allclose(hk @ hk.T, np.eye(F), atol=1e-5)


def test_optimized_lstm_shares_params_with_lstm():
  x = _x()
  carry = _random_carry(nn.LSTMCell(F), x)
  v_lstm = nn.LSTMCell(F).init(KEY, carry, x)
  v_opt = nn.OptimizedLSTMCell(F).init(KEY, carry, x)
  _close(v_lstm, v_opt)
  _close(nn.OptimizedLSTMCell(F).apply(v_lstm, carry, x), nn.LSTMCell(F).apply(v_lstm, carry, x))


def test_initialize_carry_shapes_and_carry_init():
  assert jax.tree.map(jnp.shape, nn.LSTMCell(F).initialize_carry(KEY, (7, 2, IN))) == (
    (7, 2, F), (7, 2, F))
  h = nn.GRUCell(F, carry_init=nn.initializers.ones).initialize_carry(KEY, (IN,))
  np.testing.assert_array_equal(h, jnp.ones((F,)))
  c = nn.SimpleCell(F, param_dtype=jnp.bfloat16).initialize_carry(KEY, (B, IN))
  assert c.dtype == jnp.bfloat16
  for cell in [nn.LSTMCell(F), nn.GRUCell(F), nn.SimpleCell(F), nn.MGUCell(F)]:
    assert cell.num_feature_axes == 1
  assert nn.ConvLSTMCell(F, (3, 3)).num_feature_axes == 3


def test_conv_lstm_step_matches_reference():
  cell = nn.ConvLSTMCell(F, kernel_size=(3,))
  x = _x((B, 6, IN))
  carry = _random_carry(cell, x)
  assert jax.tree.map(jnp.shape, carry) == ((B, 6, F), (B, 6, F))
  params = _init(cell, carry, x)
  assert jax.tree.map(jnp.shape, params) == {
    "ih": {"kernel": (3, IN, 4 * F), "bias": (4 * F,)},
    "hh": {"kernel": (3, F, 4 * F), "bias": (4 * F,)}}

  def conv(p, v):
    y = jax.lax.conv_general_dilated(v, p["kernel"], (1,), "SAME",
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    return y + p["bias"]

  i, g, f, o = jnp.split(conv(params["ih"], x) + conv(params["hh"], carry[1]), 4, axis=-1)
  c = jax.nn.sigmoid(f + 1) * carry[0] + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  _close(cell.apply({"params": params}, carry, x), ((c, h), h))


def test_cell_dtype_and_unbatched_input():
  x = _x((IN,))
  cell = nn.GRUCell(F, dtype=jnp.bfloat16)
  carry = cell.initialize_carry(KEY, x.shape).astype(jnp.bfloat16)
  new_carry, y = cell.apply(cell.init(KEY, carry, x), carry, x)
  assert y.shape == (F,) and y.dtype == new_carry.dtype == jnp.bfloat16


def test_wrong_carry_shape_names_the_cell():
  x = _x()
  with pytest.raises(errors.CarryShapeError, match=r"LSTMCell.*\(2, 4\).*\(2, 5\)"):
    nn.LSTMCell(F).init(KEY, (jnp.zeros((B, 5)),) * 2, x)
  with pytest.raises(errors.CarryShapeError, match="GRUCell"):
    nn.GRUCell(F).init(KEY, jnp.zeros((3, F)), x)
  with pytest.raises(errors.CarryShapeError, match="ConvLSTMCell"):
    nn.ConvLSTMCell(F, (3,)).init(KEY, (jnp.zeros((B, 6, 2)),) * 2, _x((B, 6, IN)))


def test_wrong_input_features_after_init():
  x = _x()
  cell = nn.OptimizedLSTMCell(F)
  carry = cell.initialize_carry(KEY, x.shape)
  variables = cell.init(KEY, carry, x)
  with pytest.raises(errors.FeatureSizeError, match="ii"):
    cell.apply(variables, carry, _x((B, IN + 1)))


def test_cell_gradients_match_reference():
  x = _x()
  cell = nn.LSTMCell(F)
  carry = _random_carry(cell, x)
  params = _init(cell, carry, x)
  loss = lambda p: jnp.sum(cell.apply({"params": p}, carry, x)[1] ** 2)  # noqa: E731
  ref_loss = lambda p: jnp.sum(_lstm_ref(p, carry, x)[1] ** 2)  # noqa: E731
  _close(jax.grad(loss)(params), jax.grad(ref_loss)(params))
