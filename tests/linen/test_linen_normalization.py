import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors

K = jax.random.split(jax.random.key(6), 4)


def rand(shape, seed=0):
  """Standard-normal test data from NumPy (jax.random compiles once per shape: slow)."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def shapes(variables):
  return jax.tree.map(jnp.shape, variables)


def test_batch_norm_training_updates_running_stats():
  x = rand((8, 3), 0) * 2 + 1
  layer = nn.BatchNorm(use_running_average=False, momentum=0.9)
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"scale": (3,), "bias": (3,)},
                       "batch_stats": {"mean": (3,), "var": (3,)}}
  # init does not move the averages away from 0 / 1
  np.testing.assert_allclose(v["batch_stats"]["mean"], 0.0)
  np.testing.assert_allclose(v["batch_stats"]["var"], 1.0)
  y, updates = layer.apply(v, x, mutable=["batch_stats"])
  np.testing.assert_allclose(y, (x - x.mean(0)) / jnp.sqrt(x.var(0) + 1e-5), atol=1e-5)
  np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.1 * x.mean(0), rtol=1e-5)
  np.testing.assert_allclose(updates["batch_stats"]["var"], 0.9 + 0.1 * x.var(0), rtol=1e-5)


def test_batch_norm_eval_uses_running_average():
  x = rand((4, 2, 3), 0)
  layer = nn.BatchNorm()
  v = layer.init(K[1], x, use_running_average=False)
  stats = {"mean": jnp.array([1.0, 2.0, 3.0]), "var": jnp.array([4.0, 1.0, 0.25])}
  v = {"params": v["params"], "batch_stats": stats}
  y = layer.apply(v, x, use_running_average=True)
  ref = (x - stats["mean"]) / jnp.sqrt(stats["var"] + 1e-5)
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
  with pytest.raises(errors.FlaxenError):
    layer.apply(v, x)  # neither attribute nor argument says which statistics to use


def test_batch_norm_cross_device_axis_name():
  x = rand((4, 2, 3), 0)
  layer = nn.BatchNorm(use_running_average=False, axis_name="batch")
  v = layer.init(K[1], x[0])
  y, _ = jax.vmap(lambda xs: layer.apply(v, xs, mutable=["batch_stats"]), axis_name="batch")(x)
  flat = x.reshape(8, 3)
  ref = (x - flat.mean(0)) / jnp.sqrt(flat.var(0) + 1e-5)
  np.testing.assert_allclose(y, ref, atol=1e-5)


def test_layer_norm_defaults_and_reference():
  x = rand((2, 5), 0)
  layer = nn.LayerNorm()
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"scale": (5,), "bias": (5,)}}
  p = {"params": {"scale": jnp.arange(5.0), "bias": jnp.ones(5)}}
  mu = x.mean(-1, keepdims=True)
  ref = (x - mu) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-6) * jnp.arange(5.0) + 1
  np.testing.assert_allclose(layer.apply(p, x), ref, atol=1e-5)


def test_rms_norm_reference():
  x = rand((2, 5), 0)
  layer = nn.RMSNorm()
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"scale": (5,)}}
  ref = x / jnp.sqrt((x**2).mean(-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(layer.apply(v, x), ref, atol=1e-5)


def test_group_norm_reference_and_errors():
  x = rand((2, 3, 4), 0)
  layer = nn.GroupNorm(num_groups=2)
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"scale": (4,), "bias": (4,)}}
  g = x.reshape(2, 3, 2, 2)
  ref = ((g - g.mean((1, 3), keepdims=True)) / jnp.sqrt(g.var((1, 3), keepdims=True) + 1e-6))
  np.testing.assert_allclose(layer.apply(v, x), ref.reshape(x.shape), atol=1e-5)
  v2 = nn.GroupNorm(num_groups=None, group_size=2).init(K[1], x)
  np.testing.assert_allclose(nn.GroupNorm(num_groups=None, group_size=2).apply(v2, x),
                             ref.reshape(x.shape), atol=1e-5)
  with pytest.raises(errors.NumGroupsError):
    nn.GroupNorm().init(K[1], x)  # default 32 groups do not divide 4 channels


def test_instance_norm_matches_layer_norm_over_spatial_axes():
  x = rand((2, 3, 4, 5), 0)
  layer = nn.InstanceNorm()
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"scale": (5,), "bias": (5,)}}
  mu = x.mean((1, 2), keepdims=True)
  ref = (x - mu) / jnp.sqrt(x.var((1, 2), keepdims=True) + 1e-6)
  np.testing.assert_allclose(layer.apply(v, x), ref, atol=1e-5)
  with pytest.raises(errors.InputShapeError):
    nn.InstanceNorm(feature_axes=0).init(K[1], x)


def test_force_float32_reductions_flag():
  x = (rand((4, 8), 0) * 3 + 100).astype(jnp.bfloat16)
  y32 = nn.LayerNorm(dtype=jnp.float32).apply({"params": {"scale": jnp.ones(8),
                                                          "bias": jnp.zeros(8)}}, x)
  mu = x.astype(jnp.float32).mean(-1, keepdims=True)
  ref = (x - mu) / jnp.sqrt(x.astype(jnp.float32).var(-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(y32, ref, atol=1e-4)
  bn = nn.BatchNorm(use_running_average=False, force_float32_reductions=False,
                    param_dtype=jnp.bfloat16)
  v = bn.init(K[1], x)
  assert v["batch_stats"]["mean"].dtype == jnp.bfloat16
  assert nn.BatchNorm(use_running_average=False).init(K[1], x)["batch_stats"]["var"].dtype \
    == jnp.float32


def test_batch_norm_train_step_under_jit():
  model = nn.Sequential([nn.Dense(4), nn.BatchNorm(use_running_average=False)])
  x = rand((8, 3), 0)
  v = model.init(K[1], x)

  @jax.jit
  def step(variables, x):
    return model.apply(variables, x, mutable=["batch_stats"])

  y, upd = step(v, x)
  np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-5)
  h = x @ v["params"]["layers_0"]["kernel"]
  np.testing.assert_allclose(upd["batch_stats"]["layers_1"]["mean"], 0.01 * h.mean(0),
                             rtol=1e-4, atol=1e-6)
