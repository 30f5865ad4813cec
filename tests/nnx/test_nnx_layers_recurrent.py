"""NNX recurrent layers: params, cell outputs against hand-written gate math, and RNN against
a Python loop of the cell (reverse, seq_lengths, time_major, return_carry)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx

X = np.linspace(-1, 1, 2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
sig = jax.nn.sigmoid


def _shapes(module):
  return {"/".join(map(str, k)): v.value.shape for k, v in nnx.to_flat_state(nnx.state(module))}


def _affine(linear, x):
  y = x @ linear.kernel.value
  return y if linear.bias is None else y + linear.bias.value


def test_lstm_cell_params_and_math():
  cell = nnx.LSTMCell(3, 4, rngs=nnx.Rngs(0))
  shapes = _shapes(cell)
  assert shapes["ii/kernel"] == (3, 4) and "ii/bias" not in shapes
  assert shapes["hf/kernel"] == (4, 4) and shapes["hf/bias"] == (4,)
  assert len(shapes) == 12
  c, h = cell.initialize_carry((2, 3))
  assert c.shape == h.shape == (2, 4) and not c.any()
  c, h = jnp.full((2, 4), 0.3), jnp.full((2, 4), -0.2)
  x = X[:, 0]
  pre = {g: _affine(getattr(cell, "i" + g), x) + _affine(getattr(cell, "h" + g.rstrip("_")), h)
         for g in ("i", "f_", "g", "o")}
  new_c = sig(pre["f_"]) * c + sig(pre["i"]) * jnp.tanh(pre["g"])
  new_h = sig(pre["o"]) * jnp.tanh(new_c)
  (c2, h2), y = cell((c, h), x)
  np.testing.assert_allclose(c2, new_c, rtol=1e-5)
  np.testing.assert_allclose(h2, new_h, rtol=1e-5)
  np.testing.assert_array_equal(y, h2)


def test_optimized_lstm_and_gru_and_simple_cell_math():
  x, h = X[:, 0], jnp.full((2, 4), 0.1)
  cell = nnx.OptimizedLSTMCell(3, 4, rngs=nnx.Rngs(0))
  assert _shapes(cell) == {"dense_i/kernel": (3, 16), "dense_h/kernel": (4, 16),
                           "dense_h/bias": (16,)}
  i, f, g, o = jnp.split(_affine(cell.dense_i, x) + _affine(cell.dense_h, h), 4, -1)
  c = jnp.full((2, 4), 0.2)
  (c2, h2), _ = cell((c, h), x)
  np.testing.assert_allclose(c2, sig(f) * c + sig(i) * jnp.tanh(g), rtol=1e-5)
  np.testing.assert_allclose(h2, sig(o) * jnp.tanh(c2), rtol=1e-5)

  gru = nnx.GRUCell(3, 4, rngs=nnx.Rngs(0))
  assert _shapes(gru) == {"dense_i/kernel": (3, 12), "dense_i/bias": (12,),
                          "dense_h/kernel": (4, 12)}
  xr, xz, xn = jnp.split(_affine(gru.dense_i, x), 3, -1)
  hr, hz, hn = jnp.split(_affine(gru.dense_h, h), 3, -1)
  r, z = sig(xr + hr), sig(xz + hz)
  expected = (1 - z) * jnp.tanh(xn + r * hn) + z * h
  np.testing.assert_allclose(gru(h, x)[0], expected, rtol=1e-5)

  simple = nnx.SimpleCell(3, 4, residual=True, rngs=nnx.Rngs(0))
  expected = jnp.tanh(_affine(simple.dense_i, x) + _affine(simple.dense_h, h) + h)
  np.testing.assert_allclose(simple(h, x)[0], expected, rtol=1e-5)


def _loop(cell, carry, xs):
  ys = []
  for t in range(xs.shape[1]):
    carry, y = cell(carry, xs[:, t])
    ys.append(y)
  return carry, jnp.stack(ys, axis=1)


@pytest.mark.parametrize("cell_cls", [nnx.LSTMCell, nnx.GRUCell])
def test_rnn_matches_python_loop(cell_cls):
  cell = cell_cls(3, 4, rngs=nnx.Rngs(0))
  rnn = nnx.RNN(cell, return_carry=True)
  carry, ys = rnn(X)
  ref_carry, ref_ys = _loop(cell, cell.initialize_carry((2, 3)), X)
  np.testing.assert_allclose(ys, ref_ys, rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               carry, ref_carry)
  tm = rnn(jnp.swapaxes(X, 0, 1), time_major=True, return_carry=False)
  np.testing.assert_allclose(jnp.swapaxes(tm, 0, 1), ref_ys, rtol=1e-5, atol=1e-6)


def test_rnn_reverse_and_seq_lengths():
  cell = nnx.SimpleCell(3, 4, rngs=nnx.Rngs(0))
  lengths = jnp.array([3, 5])
  carry, ys = nnx.RNN(cell)(X, seq_lengths=lengths, return_carry=True)
  for b, n in enumerate([3, 5]):
    ref_carry, ref_ys = _loop(cell, jnp.zeros((1, 4)), X[b:b + 1, :n])
    np.testing.assert_allclose(ys[b, :n], ref_ys[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry[b], ref_carry[0], rtol=1e-5, atol=1e-6)
  ys = nnx.RNN(cell, reverse=True, keep_order=True)(X, seq_lengths=lengths)
  for b, n in enumerate([3, 5]):
    _, ref_ys = _loop(cell, jnp.zeros((1, 4)), X[b:b + 1, :n][:, ::-1])
    np.testing.assert_allclose(ys[b, :n], ref_ys[0, ::-1], rtol=1e-5, atol=1e-6)
  with pytest.raises(errors.SeqLengthsError):
    nnx.RNN(cell)(X, seq_lengths=jnp.array([1.0, 2.0]))


def test_rnn_trains_under_jit_and_grad():
  model = nnx.RNN(nnx.OptimizedLSTMCell(3, 4, rngs=nnx.Rngs(0)))

  @nnx.jit
  def step(model):
    loss, grads = nnx.value_and_grad(lambda m: ((m(X)[:, -1] - 1.0) ** 2).mean())(model)
    nnx.update(model, jax.tree.map(lambda p, g: p - 0.5 * g, nnx.state(model, nnx.Param),
                                   grads))
    return loss

  losses = [float(step(model)) for _ in range(3)]
  assert losses[-1] < losses[0]


def test_bidirectional_matches_two_rnns():
  fw, bw = nnx.GRUCell(3, 4, rngs=nnx.Rngs(0)), nnx.GRUCell(3, 4, rngs=nnx.Rngs(1))
  bi = nnx.Bidirectional(nnx.RNN(fw), nnx.RNN(bw), return_carry=True)
  (carry_fw, carry_bw), ys = bi(X)
  ref_fw_carry, ref_fw = _loop(fw, jnp.zeros((2, 4)), X)
  ref_bw_carry, ref_bw = _loop(bw, jnp.zeros((2, 4)), X[:, ::-1])
  np.testing.assert_allclose(ys, jnp.concatenate([ref_fw, ref_bw[:, ::-1]], -1), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(carry_fw, ref_fw_carry, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry_bw, ref_bw_carry, rtol=1e-5, atol=1e-6)


def test_cell_carry_init_keep_rngs_and_metadata():
  cell = nnx.SimpleCell(3, 4, carry_init=jax.nn.initializers.normal(), keep_rngs=True,
                        kernel_metadata={"sharding": ("in", "out")}, rngs=nnx.Rngs(0))
  a, b = cell.initialize_carry((2, 3)), cell.initialize_carry((2, 3))
  assert a.shape == (2, 4) and not np.array_equal(a, b)  # drawn from the kept rngs
  assert not cell.initialize_carry((2, 3), carry_init=jax.nn.initializers.zeros).any()
  assert cell.dense_i.kernel.sharding == ("in", "out")
  assert cell.dense_h.kernel.get_metadata() == {}


class _CountingCell(nnx.SimpleCell):
  """A cell that also counts its steps in a Variable (state the loop must carry)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.steps = nnx.BatchStat(jnp.array(0))

  def __call__(self, carry, inputs):
    self.steps.value += 1
    return super().__call__(carry, inputs)


def test_rnn_carries_cell_state_through_the_loop():
  cell = _CountingCell(3, 4, rngs=nnx.Rngs(0))
  rnn = nnx.RNN(cell)
  rnn(X)
  nnx.jit(lambda m, x: m(x))(rnn, X)
  assert int(cell.steps.value) == 10


def test_wrong_carry_shape_is_reported():
  cell = nnx.LSTMCell(3, 4, rngs=nnx.Rngs(0))
  with pytest.raises(errors.CarryShapeError, match=r"LSTMCell.*\(2, 4\).*\(2, 5\)"):
    cell((jnp.zeros((2, 5)), jnp.zeros((2, 5))), X[:, 0])
  with pytest.raises(errors.CarryShapeError):
    nnx.GRUCell(3, 4, rngs=nnx.Rngs(0))(jnp.zeros((3, 4)), X[:, 0])
