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


def test_mask_from_an_rng_stream_advances_it():
  stream = nnx.Rngs(dropout=1).dropout
  layer = nnx.Dropout(0.5, rngs=stream)
  expected = _reference(jax.random.fold_in(jax.random.key(1), 0))
  np.testing.assert_allclose(layer(X), expected, rtol=1e-6)
  assert int(stream.count.value) == 1
