"""NNX normalization layers and Dropout: params, defaults, outputs against jnp references,
BatchNorm train/eval and running statistics, Dropout with and without rngs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx

X = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7) ** 1.5


def _norm(x, axes, eps):
  mean = x.mean(axes, keepdims=True)
  var = ((x - mean) ** 2).mean(axes, keepdims=True)
  return (x - mean) / np.sqrt(var + eps)


def test_layer_norm_defaults_and_output():
  ln = nnx.LayerNorm(4, rngs=nnx.Rngs(0))
  assert ln.epsilon == 1e-6
  ln.scale.value = jnp.arange(1.0, 5.0)
  ln.bias.value = jnp.full(4, 0.5)
  expected = _norm(X, -1, 1e-6) * np.arange(1.0, 5.0) + 0.5
  np.testing.assert_allclose(ln(X), expected, rtol=1e-4, atol=1e-5)
  assert set(nnx.state(ln)) == {"scale", "bias"}


def test_rms_norm_output():
  rms = nnx.RMSNorm(4, rngs=nnx.Rngs(0))
  assert set(nnx.state(rms)) == {"scale"}
  expected = X / np.sqrt((X**2).mean(-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(rms(X), expected, rtol=1e-5)


def test_group_norm_output_and_bad_groups():
  gn = nnx.GroupNorm(4, num_groups=2, rngs=nnx.Rngs(0))
  grouped = X.reshape(2, 3, 2, 2)
  expected = _norm(grouped, (1, 3), 1e-6).reshape(X.shape)
  np.testing.assert_allclose(gn(X), expected, rtol=1e-4, atol=1e-5)
  with pytest.raises(errors.NumGroupsError):
    nnx.GroupNorm(4, num_groups=3, rngs=nnx.Rngs(0))


def test_instance_norm_output():
  inorm = nnx.InstanceNorm(4, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(inorm(X), _norm(X, 1, 1e-6), rtol=1e-4, atol=1e-5)


def test_batch_norm_train_updates_running_stats_and_eval_uses_them():
  bn = nnx.BatchNorm(4, rngs=nnx.Rngs(0))
  assert (bn.momentum, bn.epsilon, bn.use_running_average) == (0.99, 1e-5, False)
  assert {k: type(v) for k, v in nnx.state(bn).items()} == {
    "scale": nnx.Param, "bias": nnx.Param, "mean": nnx.BatchStat, "var": nnx.BatchStat}
  y = bn(X)
  np.testing.assert_allclose(y, _norm(X, (0, 1), 1e-5), rtol=1e-4, atol=1e-5)
  mean, var = X.mean((0, 1)), X.var((0, 1))
  np.testing.assert_allclose(bn.mean.value, 0.01 * mean, rtol=1e-5)
  np.testing.assert_allclose(bn.var.value, 0.99 + 0.01 * var, rtol=1e-5)
  bn.eval()
  assert bn.use_running_average
  before = bn.mean.value
  expected = (X - bn.mean.value) / np.sqrt(bn.var.value + 1e-5)
  np.testing.assert_allclose(bn(X), expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(bn.mean.value, before)
  bn.train()
  assert not bn.use_running_average
  bn(X, use_running_average=True)  # the call argument overrides the attribute
  np.testing.assert_array_equal(bn.mean.value, before)


def test_batch_norm_stats_update_inside_jit():
  bn = nnx.BatchNorm(4, momentum=0.5, rngs=nnx.Rngs(0))
  nnx.jit(lambda m, x: m(x))(bn, X)
  np.testing.assert_allclose(bn.mean.value, 0.5 * X.mean((0, 1)), rtol=1e-5)


def test_dropout_rate_and_determinism():
  x = jnp.ones((4, 16))
  layer = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=0))
  y = layer(x)
  own = jax.random.fold_in(jax.random.key(0), 0)  # the layer's stream, forked from Rngs
  keep = jax.random.bernoulli(jax.random.fold_in(own, 0), 0.5, x.shape)
  np.testing.assert_array_equal(y, jnp.where(keep, 2.0, 0.0))
  assert not np.array_equal(layer(x), y)  # the stream advanced
  np.testing.assert_array_equal(layer(x, deterministic=True), x)
  layer.eval()
  np.testing.assert_array_equal(layer(x), x)
  layer.train()
  assert set(np.unique(layer(x)).tolist()) <= {0.0, 2.0}


def test_dropout_call_rngs_broadcast_and_missing_rngs():
  x = jnp.ones((3, 8))
  layer = nnx.Dropout(0.5, broadcast_dims=(0,))
  y = layer(x, rngs=nnx.Rngs(dropout=1))
  assert (y == y[0]).all()
  with pytest.raises(errors.DropoutRngError):
    layer(x)
  np.testing.assert_array_equal(nnx.Dropout(0.0)(x), x)


def test_dropout_inside_jit_advances_rng_count():
  rngs = nnx.Rngs(dropout=0)
  layer = nnx.Dropout(0.5, rngs=rngs)
  f = nnx.jit(lambda m, x: m(x))
  a, b = f(layer, jnp.ones(32)), f(layer, jnp.ones(32))
  assert int(layer.rngs.count.value) == 2 and not np.array_equal(a, b)
  assert int(rngs.dropout.count.value) == 1  # drawn once, by the fork at construction


def test_sequential_unpacks_tuples_and_rejects_empty():
  seq = nnx.Sequential(lambda x: (x, x + 1), lambda a, b: a * b)
  assert seq(2) == 6
  with pytest.raises(errors.EmptySequentialError):
    nnx.Sequential()(1)
