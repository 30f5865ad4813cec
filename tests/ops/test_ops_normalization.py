import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors
from flaxen.ops import normalization as norm

K = jax.random.split(jax.random.key(2), 4)


def rand(shape, seed=0):
  """Standard-normal test data from NumPy (jax.random compiles once per shape: slow)."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def test_compute_stats_fast_and_exact_variance():
  x = rand((3, 4, 5), 0) + 3.0
  for fast in (True, False):
    mean, var = norm.compute_stats(x, (0, 2), use_fast_variance=fast)
    np.testing.assert_allclose(mean, x.mean((0, 2)), rtol=1e-5)
    np.testing.assert_allclose(var, x.var((0, 2)), rtol=1e-4)


def test_compute_stats_half_precision_in_float32_and_mask():
  x = jnp.array([[1.0, 2.0, 100.0]], jnp.bfloat16)
  mask = jnp.array([[True, True, False]])
  mean, var = norm.compute_stats(x, -1, mask=mask)
  assert mean.dtype == jnp.float32
  np.testing.assert_allclose(mean, [1.5])
  np.testing.assert_allclose(var, [0.25])


def test_compute_stats_across_mapped_axis():
  x = rand((4, 3, 2), 0)
  stats = jax.vmap(lambda v: norm.compute_stats(v, 0, axis_name="b"), axis_name="b")(x)
  np.testing.assert_allclose(stats[0][0], x.mean((0, 1)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(stats[1][2], x.var((0, 1)), rtol=1e-4)


def test_layer_norm_reference():
  x = rand((2, 3, 6), 0)
  scale = rand((6,), 1)
  bias = rand((6,), 2)
  y = norm.layer_norm(x, scale, bias)
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  np.testing.assert_allclose(y, (x - mu) / jnp.sqrt(var + 1e-6) * scale + bias, atol=1e-5)


def test_layer_norm_multiple_axes_and_dtype():
  x = rand((2, 3, 4), 0)
  scale = rand((3, 4), 1)
  y = norm.layer_norm(x, scale, reduction_axes=(1, 2), feature_axes=(1, 2), dtype=jnp.bfloat16)
  assert y.dtype == jnp.bfloat16
  mu = x.mean((1, 2), keepdims=True)
  ref = (x - mu) / jnp.sqrt(x.var((1, 2), keepdims=True) + 1e-6) * scale
  np.testing.assert_allclose(y.astype(jnp.float32), ref, atol=3e-2)


def test_rms_norm_reference():
  x = rand((2, 5), 0)
  scale = rand((5,), 1)
  ref = x / jnp.sqrt((x**2).mean(-1, keepdims=True) + 1e-6) * scale
  np.testing.assert_allclose(norm.rms_norm(x, scale), ref, atol=1e-5)


@pytest.mark.parametrize("num_groups,group_size", [(2, None), (None, 3)])
def test_group_norm_reference(num_groups, group_size):
  x = rand((2, 4, 4, 6), 0)
  scale = rand((6,), 1)
  bias = rand((6,), 2)
  y = norm.group_norm(x, scale, bias, num_groups=num_groups, group_size=group_size)
  g = x.reshape(2, 4, 4, 2, 3)
  mu = g.mean((1, 2, 4), keepdims=True)
  var = g.var((1, 2, 4), keepdims=True)
  ref = ((g - mu) / jnp.sqrt(var + 1e-6)).reshape(x.shape) * scale + bias
  np.testing.assert_allclose(y, ref, atol=1e-5)


def test_group_norm_bad_groups():
  for groups, size in ((4, None), (None, 4), (2, 3), (None, None)):
    with pytest.raises(errors.NumGroupsError, match="6 channel"):
      norm.group_norm(jnp.ones((1, 6)), num_groups=groups, group_size=size)


def test_batch_norm_with_stats_and_ema():
  x = rand((8, 3, 2), 0)
  mean, var = norm.compute_stats(x, (0, 1))
  scale, bias = jnp.array([2.0, 3.0]), jnp.array([0.5, -0.5])
  y = norm.batch_norm(x, mean, var, scale, bias)
  ref = (x - x.mean((0, 1))) / jnp.sqrt(x.var((0, 1)) + 1e-5) * scale + bias
  np.testing.assert_allclose(y, ref, atol=1e-5)
  np.testing.assert_allclose(norm.ema(jnp.ones(2), mean, 0.9), 0.9 + 0.1 * mean, rtol=1e-6)
