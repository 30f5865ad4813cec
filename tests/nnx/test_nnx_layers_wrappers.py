"""NNX WeightNorm, SpectralNorm, RNN(broadcast_rngs) and the promote_dtype of norms and
cells, against jnp references."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import nnx

X = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4)), jnp.float32)


def test_weight_norm_output_and_gradients():
  lin = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
  wn = nnx.WeightNorm(lin, rngs=nnx.Rngs(1))
  wn.scales["kernel"].value = jnp.array([1.0, 2.0, 3.0])

  def ref(k, b, s):
    return X @ (k / jnp.linalg.norm(k, axis=0) * s) + b

  k, b, s = lin.kernel.value, lin.bias.value, wn.scales["kernel"].value
  np.testing.assert_allclose(wn(X), ref(k, b, s), rtol=1e-5, atol=1e-6)
  grads = nnx.grad(lambda m: m(X).sum())(wn)
  gk = jax.grad(lambda k: ref(k, b, s).sum())(k)
  np.testing.assert_allclose(grads.layer_instance.kernel.value, gk, rtol=1e-4, atol=1e-6)


def test_spectral_norm_divides_by_sigma_and_updates_stats():
  lin = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
  sn = nnx.SpectralNorm(lin, n_steps=30, rngs=nnx.Rngs(1))
  u0 = sn.u["kernel"].value
  y = sn(X, update_stats=False)
  np.testing.assert_array_equal(sn.u["kernel"].value, u0)
  y = sn(X)
  top = np.linalg.svd(np.asarray(lin.kernel.value), compute_uv=False)[0]
  np.testing.assert_allclose(float(sn.sigma["kernel"].value), top, rtol=1e-4)  # 30 steps
  np.testing.assert_allclose(y, X @ (lin.kernel.value / top) + lin.bias.value, rtol=1e-4,
                             atol=1e-5)


def test_rnn_broadcast_rngs_draws_one_key_per_call():
  class Cell(nnx.SimpleCell):
    def __init__(self, rngs):
      super().__init__(3, 4, rngs=rngs)
      self.drop = nnx.Dropout(0.5, rng_collection="recurrent_dropout", rngs=rngs)

    def __call__(self, carry, x):
      carry, y = super().__call__(carry, x)
      return carry, self.drop(y)

  rngs = nnx.Rngs(0, recurrent_dropout=1)
  rnn = nnx.RNN(Cell(rngs), broadcast_rngs="recurrent_dropout")
  y = rnn(jnp.ones((1, 5, 3)))
  stream = rngs["recurrent_dropout"]
  assert int(stream.count.value) == 1
  # One key for every step: the same dropout mask at each time step.
  mask = np.asarray(y != 0)
  assert (mask == mask[:, :1]).all()


def test_norm_and_cell_promote_dtype_rules_are_used():
  calls = []

  def rule(args, dtype=None, inexact=True):
    calls.append(len(args))
    return tuple(None if a is None else jnp.asarray(a, jnp.bfloat16) for a in args)

  assert nnx.LayerNorm(4, promote_dtype=rule, rngs=nnx.Rngs(0))(X).dtype == jnp.bfloat16
  assert calls == [3]  # (x, scale, bias)
  cell = nnx.GRUCell(4, 2, promote_dtype=rule, rngs=nnx.Rngs(0))
  cell(cell.initialize_carry(X.shape), X)
  assert len(calls) == 1 + 2  # the GRU's two fused Linears, dense_i and dense_h
