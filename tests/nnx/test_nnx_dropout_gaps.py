"""nnx.Dropout drawing its mask from an RngStream or from a key given to the call."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import nnx

X = jnp.arange(1.0, 13.0).reshape(3, 4)


def _reference(key, rate=0.5):
  keep = jax.random.bernoulli(key, 1 - rate, X.shape)
  return jnp.where(keep, X / (1 - rate), 0.0)


def test_mask_from_a_key_given_to_the_call():
  layer = nnx.Dropout(0.5)
  key = jax.random.key(3)
  np.testing.assert_allclose(layer(X, rngs=key), _reference(key), rtol=1e-6)


def test_layer_forks_its_own_stream_from_a_given_stream():
  stream = nnx.Rngs(dropout=1).dropout
  layer = nnx.Dropout(0.5, rngs=stream)
  assert int(stream.count.value) == 1  # the fork drew the layer's base key
  own = jax.random.fold_in(jax.random.key(1), 0)
  expected = _reference(jax.random.fold_in(own, 0))
  np.testing.assert_allclose(layer(X), expected, rtol=1e-6)
  assert int(stream.count.value) == 1 and int(layer.rngs.count.value) == 1


def test_layer_forks_its_collection_stream_of_an_rngs():
  rngs = nnx.Rngs(0, noise=2)
  layer = nnx.Dropout(0.5, rng_collection="noise", rngs=rngs)
  assert int(rngs.noise.count.value) == 1 and int(rngs.default.count.value) == 0
  assert layer.rngs is not rngs.noise and int(layer.rngs.count.value) == 0
  own = jax.random.fold_in(jax.random.key(2), 0)
  np.testing.assert_allclose(layer(X), _reference(jax.random.fold_in(own, 0)), rtol=1e-6)
  rngs.noise()  # the caller's stream no longer feeds the layer
  np.testing.assert_allclose(layer(X), _reference(jax.random.fold_in(own, 1)), rtol=1e-6)
