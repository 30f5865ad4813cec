"""nnx.Rngs: counter-based streams, fallback to default, fork/split, reseed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx


def _data(key):
  return np.asarray(jax.random.key_data(key))


def test_keys_are_fold_in_of_stream_key_and_count():
  rngs = nnx.Rngs(params=7)
  k0, k1 = rngs.params(), rngs["params"]()
  base = jax.random.key(7)
  np.testing.assert_array_equal(_data(k0), _data(jax.random.fold_in(base, 0)))
  np.testing.assert_array_equal(_data(k1), _data(jax.random.fold_in(base, 1)))
  assert int(rngs.params.count.value) == 2


def test_default_stream_and_missing_stream():
  rngs = nnx.Rngs(0)
  a = rngs()
  b = rngs.dropout()  # falls back to default
  assert not np.array_equal(_data(a), _data(b)) and int(rngs.default.count.value) == 2
  assert "dropout" not in rngs and "default" in rngs
  with pytest.raises(errors.NoRngStreamError, match="dropout"):
    nnx.Rngs(params=0).dropout()


def test_rng_state_is_filterable_by_type_and_tag():
  rngs = nnx.Rngs(params=0, dropout=1)
  keys = nnx.state(rngs, nnx.RngKey)
  counts = nnx.state(rngs, nnx.All(nnx.RngCount, "dropout"))
  assert {p for p, _ in keys.flat_state()} == {("params", "key"), ("dropout", "key")}
  assert {p for p, _ in counts.flat_state()} == {("dropout", "count")}


def test_fork_with_split_gives_batched_keys_for_vmap():
  rngs = nnx.Rngs(params=0)
  forked = rngs.fork(split=4)
  keys = forked.params()
  assert keys.shape == (4,)
  assert len({tuple(_data(k)) for k in keys}) == 4
  assert forked.params.count.value.shape == (4,)
  layers = jax.vmap(lambda k: jax.random.normal(k, (2,)))(keys)
  assert layers.shape == (4, 2)
  assert rngs.split(2).params().shape == (2,)


def test_reseed_restarts_streams_from_the_first_key_of_the_seed():
  model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
  model.rngs = nnx.Rngs(dropout=3)
  model.rngs.dropout()
  nnx.reseed(model, dropout=3)
  # the stream's new base key is Rngs(dropout=3)'s first key, as in Flax (what a layer
  # forking its stream from Rngs(dropout=3) starts from)
  first = jax.random.fold_in(jax.random.key(3), 0)
  assert int(model.rngs.dropout.count.value) == 0
  np.testing.assert_array_equal(_data(model.rngs.dropout()),
                                _data(jax.random.fold_in(first, 0)))


def test_reseed_gives_streams_of_one_name_successive_keys():
  a, b = nnx.Rngs(dropout=0), nnx.Rngs(dropout=0)
  nnx.reseed([a, b], graph=False, dropout=5)
  k5 = jax.random.key(5)
  np.testing.assert_array_equal(_data(a.dropout.key.value), _data(jax.random.fold_in(k5, 0)))
  np.testing.assert_array_equal(_data(b.dropout.key.value), _data(jax.random.fold_in(k5, 1)))


def test_reseed_of_a_split_stream_needs_a_shape_policy():
  rngs = nnx.Rngs(dropout=0)
  with nnx.split_rngs(rngs, splits=3):
    with pytest.raises(errors.ReseedShapeError, match="match_shape"):
      nnx.reseed(rngs, dropout=1)
    nnx.reseed(rngs, dropout=1, policy="match_shape")
    assert rngs.dropout.key.value.shape == (3,)
    nnx.reseed(rngs, dropout=1, policy=lambda path, key, shape: jax.random.split(key, 3)[0])
    assert rngs.dropout.key.value.shape == ()


def test_rngs_accepts_keys_and_raw_key_data():
  a = nnx.Rngs(jax.random.key(1))()
  b = nnx.Rngs(jax.random.PRNGKey(1))()
  c = nnx.Rngs(1)()
  np.testing.assert_array_equal(_data(a), _data(c))
  np.testing.assert_array_equal(_data(b), _data(c))


def test_layer_init_is_deterministic_in_seed():
  k1 = nnx.Linear(3, 2, rngs=nnx.Rngs(0)).kernel.value
  k2 = nnx.Linear(3, 2, rngs=nnx.Rngs(params=0)).kernel.value
  k3 = nnx.Linear(3, 2, rngs=nnx.Rngs(1)).kernel.value
  np.testing.assert_array_equal(k1, k2)
  assert not jnp.allclose(k1, k3)


def test_split_rngs_of_a_batched_stream_splits_every_key():
  rngs = nnx.Rngs(dropout=0).fork(split=2)  # a stream of 2 keys, as made under vmap
  keys = rngs.dropout.key.value
  with nnx.split_rngs(rngs, splits=3):
    assert rngs.dropout.key.value.shape == (3, 2) and rngs.dropout.count.value.shape == (3, 2)
    for j in range(2):  # column j: the 3 keys split from key j's next draw
      ref = jax.random.split(jax.random.fold_in(keys[j], 0), 3)
      np.testing.assert_array_equal(_data(rngs.dropout.key.value[:, j]), _data(ref))
  assert rngs.dropout.key.value.shape == (2,)
  assert rngs.dropout.count.value.tolist() == [1, 1]  # the split drew once from each key
