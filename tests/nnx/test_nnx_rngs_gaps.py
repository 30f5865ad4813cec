"""Rngs paths the main rng tests leave out: a mapping of seeds, ``RngStream.split`` and
private attribute lookups."""

import jax
import numpy as np
import pytest

from flaxen import nnx


def _data(key):
  return np.asarray(jax.random.key_data(key))


def test_rngs_from_a_mapping_merges_keyword_streams():
  rngs = nnx.Rngs({"params": 0, "dropout": 1}, noise=2)
  assert rngs.streams() == ["params", "dropout", "noise"]
  np.testing.assert_array_equal(_data(rngs.params.key.value), _data(jax.random.key(0)))
  np.testing.assert_array_equal(_data(rngs["noise"].key.value), _data(jax.random.key(2)))
  assert "default" not in rngs


def test_stream_split_draws_once_and_splits_that_key():
  stream = nnx.Rngs(5).default
  split = stream.split(3)
  assert int(stream.count.value) == 1
  expected = jax.random.split(jax.random.fold_in(jax.random.key(5), 0), 3)
  np.testing.assert_array_equal(_data(split.key.value), _data(expected))
  assert split.tag == "default" and split.count.value.shape == (3,)


def test_private_names_are_attribute_errors_not_streams():
  rngs = nnx.Rngs(0)
  with pytest.raises(AttributeError, match="_missing"):
    rngs._missing
  assert not hasattr(rngs, "__array__")  # numpy/jax probes must not see a stream
