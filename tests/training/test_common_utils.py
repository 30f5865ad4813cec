"""common_utils: onehot, shard, shard_prng_key, stack_forest, get_metrics against numpy."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen.training import common_utils


def test_onehot_matches_numpy_eye_rows():
  labels = np.array([[0, 3], [2, 1]])
  got = common_utils.onehot(labels, 4)
  assert got.dtype == jnp.float32 and got.shape == (2, 2, 4)
  np.testing.assert_array_equal(got, np.eye(4, dtype=np.float32)[labels])


def test_onehot_on_off_values_and_out_of_range_label():
  got = common_utils.onehot(np.array([1, 5]), 3, on_value=0.9, off_value=0.05)
  want = np.array([[0.05, 0.9, 0.05], [0.05, 0.05, 0.05]], np.float32)  # 5 is no class
  np.testing.assert_array_equal(got, want)


def test_shard_splits_the_leading_axis_per_device():
  n = jax.local_device_count()
  xs = {"x": np.arange(6 * n * 2).reshape(6 * n, 2), "y": np.arange(6 * n)}
  got = common_utils.shard(xs)
  np.testing.assert_array_equal(got["x"], xs["x"].reshape(n, 6, 2))
  np.testing.assert_array_equal(got["y"], xs["y"].reshape(n, 6))


def test_shard_prng_key_is_split_per_device():
  key = jax.random.key(0)
  keys = common_utils.shard_prng_key(key)
  want = jax.random.split(key, jax.local_device_count())
  np.testing.assert_array_equal(jax.random.key_data(keys), jax.random.key_data(want))


def test_stack_forest_and_get_metrics():
  forest = [{"loss": np.float32(i), "acc": np.array([i, i + 1])} for i in range(3)]
  stacked = common_utils.stack_forest(forest)
  np.testing.assert_array_equal(stacked["loss"], [0, 1, 2])
  np.testing.assert_array_equal(stacked["acc"], [[0, 1], [1, 2], [2, 3]])
  # Per-device metrics: a leading device axis; device 0's row of each step is kept.
  device_metrics = [{"loss": jnp.array([float(i), 99.0])} for i in range(3)]
  metrics = common_utils.get_metrics(device_metrics)
  assert isinstance(metrics["loss"], np.ndarray)
  np.testing.assert_array_equal(metrics["loss"], [0.0, 1.0, 2.0])
