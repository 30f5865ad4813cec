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


# ------------------------------------------------------------------------ RNN over sequences


def _loop(cell, params, x, carry=None):
  """The reference: the cell applied step by step over axis 1 in a Python loop."""
  if carry is None:
    carry = cell.initialize_carry(KEY, x[:, 0].shape)
  ys, carries = [], []
  for t in range(x.shape[1]):
    carry, y = cell.apply({"params": params}, carry, x[:, t])
    ys.append(y)
    carries.append(carry)
  return carries, jnp.stack(ys, axis=1)


def test_rnn_matches_loop_values_and_gradients():
  cell = nn.LSTMCell(F)
  rnn = nn.RNN(cell)
  x = _x((B, T, IN))
  variables = rnn.init(KEY, x)
  assert set(variables["params"]) == {"cell"}
  params = variables["params"]["cell"]
  carries, ys = _loop(cell, params, x)
  carry, outputs = rnn.apply(variables, x, return_carry=True)
  _close(outputs, ys)
  _close(carry, carries[-1])

  loss = lambda p: jnp.sum(rnn.apply({"params": {"cell": p}}, x) ** 2)  # noqa: E731
  ref_loss = lambda p: jnp.sum(_loop(cell, p, x)[1] ** 2)  # noqa: E731
  _close(jax.grad(loss)(params), jax.grad(ref_loss)(params))


def test_rnn_time_major_initial_carry_and_jit():
  cell = nn.GRUCell(F)
  x = _x((B, T, IN))
  h0 = jax.random.normal(jax.random.key(5), (B, F))
  rnn = nn.RNN(cell, time_major=True, return_carry=True)
  x_tm = jnp.swapaxes(x, 0, 1)
  variables = rnn.init(KEY, x_tm, initial_carry=h0)
  carry, ys = jax.jit(lambda v, x: rnn.apply(v, x, initial_carry=h0))(variables, x_tm)
  carries, ref = _loop(cell, variables["params"]["cell"], x, h0)
  _close(jnp.swapaxes(ys, 0, 1), ref)
  _close(carry, carries[-1])


def test_rnn_seq_lengths_returns_last_valid_carry():
  cell = nn.SimpleCell(F)
  rnn = nn.RNN(cell, return_carry=True)
  x = _x((B, T, IN))
  lengths = jnp.array([2, T])
  variables = rnn.init(KEY, x)
  carries, ref = _loop(cell, variables["params"]["cell"], x)
  carry, ys = rnn.apply(variables, x, seq_lengths=lengths)
  _close(ys, ref)  # padding steps are computed too (not zeroed)
  _close(carry, jnp.stack([carries[1][0], carries[T - 1][1]]))


def test_rnn_reverse_with_seq_lengths_and_keep_order():
  cell = nn.LSTMCell(F)
  x = _x((B, T, IN))
  lengths = jnp.array([3, T])
  variables = nn.RNN(cell).init(KEY, x)
  params = variables["params"]["cell"]
  carry, ys = nn.RNN(cell, reverse=True, return_carry=True).apply(
    variables, x, seq_lengths=lengths)
  kept = nn.RNN(cell, reverse=True, keep_order=True).apply(variables, x, seq_lengths=lengths)
  for b, n in enumerate(lengths.tolist()):
    xb = x[b:b + 1, :n][:, ::-1]  # the valid steps, last first
    carries, ref = _loop(cell, params, xb)
    _close(ys[b:b + 1, :n], ref)
    _close(kept[b:b + 1, :n], ref[:, ::-1])
    _close(tuple(c[b:b + 1] for c in carry), carries[-1])


def test_flip_sequences_twice_restores():
  from flaxen.linen.recurrent import flip_sequences

  x = _x((T, B, IN))
  lengths = jnp.array([1, 4])
  once = flip_sequences(x, lengths, num_batch_dims=1, time_major=True)
  np.testing.assert_array_equal(once[:4, 1], x[:4, 1][::-1])
  np.testing.assert_array_equal(flip_sequences(once, lengths, 1, True), x)
  np.testing.assert_array_equal(flip_sequences(x, None, 1, True), x[::-1])


def test_bidirectional_concatenates_forward_and_backward():
  x = _x((B, T, IN))
  lengths = jnp.array([T, 2])
  bi = nn.Bidirectional(nn.RNN(nn.GRUCell(F)), nn.RNN(nn.GRUCell(F)), return_carry=True)
  variables = bi.init(KEY, x, seq_lengths=lengths)
  assert set(variables["params"]) == {"forward_rnn", "backward_rnn"}
  (carry_f, carry_b), ys = bi.apply(variables, x, seq_lengths=lengths)
  assert ys.shape == (B, T, 2 * F)
  p = variables["params"]
  fwd = nn.RNN(nn.GRUCell(F), return_carry=True).apply(
    {"params": p["forward_rnn"]}, x, seq_lengths=lengths)
  bwd = nn.RNN(nn.GRUCell(F), reverse=True, keep_order=True, return_carry=True).apply(
    {"params": p["backward_rnn"]}, x, seq_lengths=lengths)
  _close(ys, jnp.concatenate([fwd[1], bwd[1]], axis=-1))
  _close((carry_f, carry_b), (fwd[0], bwd[0]))
  summed = nn.Bidirectional(nn.RNN(nn.GRUCell(F)), nn.RNN(nn.GRUCell(F)), merge_fn=jnp.add)
  _close(summed.apply(variables, x, seq_lengths=lengths), fwd[1] + bwd[1])


def test_rnn_over_conv_lstm_cell():
  rnn = nn.RNN(nn.ConvLSTMCell(F, kernel_size=(3,)))
  x = _x((B, T, 6, IN))  # (batch, time, width, features)
  y, variables = rnn.init_with_output(KEY, x)
  assert y.shape == (B, T, 6, F)


def test_rnn_errors_name_the_layer():
  rnn = nn.RNN(nn.LSTMCell(F))
  x = _x((B, T, IN))
  variables = rnn.init(KEY, x)
  with pytest.raises(errors.SeqLengthsError, match=r"RNN.*\(2,\).*\(3,\)"):
    rnn.apply(variables, x, seq_lengths=jnp.array([1, 2, 3]))
  with pytest.raises(errors.SeqLengthsError, match="float32"):
    rnn.apply(variables, x, seq_lengths=jnp.array([1.0, 2.0]))
  with pytest.raises(errors.InputShapeError, match="time axis"):
    rnn.apply(variables, _x((IN,)))
  with pytest.raises(errors.CarryShapeError, match="LSTMCell"):
    rnn.apply(variables, x, initial_carry=(jnp.zeros((B, F + 1)),) * 2)


def test_rnn_forwards_scan_options():
  # Per-step params: scanned over axis 0 with a fresh init key per step.
  cell = nn.SimpleCell(F)
  rnn = nn.RNN(cell, variable_axes={"params": 0}, variable_broadcast=False,
               split_rngs={"params": True}, unroll=2)
  x = _x((B, T, IN))
  variables = rnn.init(KEY, x)
  params = variables["params"]["cell"]
  assert params["i"]["kernel"].shape == (T, IN, F)
  assert not np.allclose(params["i"]["kernel"][0], params["i"]["kernel"][1])
  h, ref = cell.initialize_carry(KEY, (B, IN)), []
  for t in range(T):
    h, y = cell.apply({"params": jax.tree.map(lambda p, t=t: p[t], params)}, h, x[:, t])
    ref.append(y)
  _close(rnn.apply(variables, x), jnp.stack(ref, axis=1))
