"""Rngs sampling methods, broadcast, with_rngs / fork_rngs / split_rngs in both modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import nnx


def _key(seed, count):
  return jax.random.fold_in(jax.random.key(seed), count)


def test_sampling_methods_use_the_next_key():
  rngs = nnx.Rngs(0, params=1)
  np.testing.assert_array_equal(rngs.normal((2, 3)), jax.random.normal(_key(0, 0), (2, 3)))
  np.testing.assert_array_equal(rngs.params.uniform((4,), minval=2.0, maxval=3.0),
                                jax.random.uniform(_key(1, 0), (4,), minval=2.0, maxval=3.0))
  np.testing.assert_array_equal(rngs.randint((3,), 0, 10),
                                jax.random.randint(_key(0, 1), (3,), 0, 10))
  init = rngs.params.glorot_uniform()  # the key is drawn per call of the initializer
  np.testing.assert_array_equal(init((2, 3)),
                                jax.nn.initializers.glorot_uniform()(_key(1, 1), (2, 3)))
  np.testing.assert_array_equal(init((2, 3), jnp.float16),
                                jax.nn.initializers.glorot_uniform()(_key(1, 2), (2, 3),
                                                                     jnp.float16))


def test_stream_named_like_a_method_is_reached_by_item():
  rngs = nnx.Rngs(normal=3)
  np.testing.assert_array_equal(jax.random.key_data(rngs["normal"]()),
                                jax.random.key_data(_key(3, 0)))


def test_broadcast_repeats_key_and_count():
  stream = nnx.RngStream(0, tag="a")
  b = stream.broadcast((2, 3))
  assert b.key.value.shape == b.count.value.shape == (2, 3)
  assert (jax.random.key_data(b.key.value) == jax.random.key_data(stream.key.value)).all()
  r = nnx.Rngs(params=1, dropout=2).broadcast({"params": 5, "dropout": None})
  assert r.params.key.value.shape == (5,) and r.dropout.key.value.shape == ()


@pytest.mark.parametrize("graph", [True, False])
def test_with_rngs_split_fork_and_original_advances(graph):
  rngs = nnx.Rngs(params=0, dropout=1)
  key_var = rngs.params.key
  new = nnx.with_rngs(rngs, split={"params": 4}, fork=..., graph=graph)
  assert rngs.params.key is key_var and key_var.value.shape == ()
  assert int(rngs.params.count.value) == int(rngs.dropout.count.value) == 1
  expect = jax.random.split(_key(0, 0), 4)
  np.testing.assert_array_equal(jax.random.key_data(new.params.key.value),
                                jax.random.key_data(expect))
  np.testing.assert_array_equal(jax.random.key_data(new.dropout.key.value),
                                jax.random.key_data(_key(1, 0)))
  with pytest.raises(ValueError, match="multiple rules"):
    nnx.with_rngs(rngs, split={"params": 4}, fork="params", graph=graph)


@pytest.mark.parametrize("graph,updates", [(True, True), (True, False), (False, False)])
def test_split_rngs_in_place_or_copy(graph, updates):
  rngs = nnx.Rngs(params=0)
  out = nnx.split_rngs(rngs, splits=3, graph=graph, graph_updates=updates)
  if graph and updates:
    assert rngs.params.key.value.shape == (3,)
    nnx.restore_rngs(out)
    assert rngs.params.key.value.shape == () and int(rngs.params.count.value) == 1
  else:
    assert rngs.params.key.value.shape == () and out.params.key.value.shape == (3,)


@pytest.mark.parametrize("graph,updates", [(True, True), (False, False)])
def test_fork_rngs(graph, updates):
  rngs = nnx.Rngs(params=0)
  out = nnx.fork_rngs(rngs, graph=graph, graph_updates=updates)
  target = rngs if graph and updates else out
  np.testing.assert_array_equal(jax.random.key_data(target.params.key.value),
                                jax.random.key_data(_key(0, 0)))
  if graph and updates:
    nnx.restore_rngs(out)
  np.testing.assert_array_equal(jax.random.key_data(rngs.params.key.value),
                                jax.random.key_data(jax.random.key(0)))


def test_backup_keys_and_reseed_policy():
  rngs = nnx.Rngs(dropout=0)
  with nnx.backup_keys(rngs):
    nnx.reseed(rngs, dropout=5)
    assert int(rngs.dropout.count.value) == 0
  np.testing.assert_array_equal(jax.random.key_data(rngs.dropout.key.value),
                                jax.random.key_data(jax.random.key(0)))
  with nnx.split_rngs(rngs, splits=2):
    nnx.reseed(rngs, dropout=7, policy="match_shape")
    assert rngs.dropout.key.value.shape == (2,)


def test_with_rngs_decorator():
  @nnx.with_rngs(split=4, graph=False)
  def f(r):
    return r.params.key.value.shape
  assert f(nnx.Rngs(params=0)) == (4,)


def test_rngs_split_with_a_mapping():
  rngs = nnx.Rngs(params=0, dropout=1)
  new = rngs.split({"dropout": 5})
  assert new.dropout.key.value.shape == (5,) and new.params.key.value.shape == ()
  np.testing.assert_array_equal(jax.random.key_data(new.dropout.key.value),
                                jax.random.key_data(jax.random.split(_key(1, 0), 5)))


def test_tree_mode_vmap_takes_a_prefix_of_rngs_with_a_default_stream():
  # an Rngs answers any attribute name with its default stream; that must not make its
  # prefix copy look like a prefix filter
  rngs = nnx.with_rngs(nnx.Rngs(0), split=3, graph=False)
  axes = nnx.prefix(rngs, {nnx.RngState: 0, ...: None}, graph=False)

  @nnx.vmap(in_axes=(axes,), graph=False, graph_updates=False)
  def draw(r):
    return r.normal(())

  out = draw(rngs)
  keys = rngs.default.key.value
  ref = [jax.random.normal(jax.random.fold_in(keys[i], 0), ()) for i in range(3)]
  np.testing.assert_allclose(out, ref, rtol=1e-6)
  assert rngs.default.count.value.tolist() == [1, 1, 1]
