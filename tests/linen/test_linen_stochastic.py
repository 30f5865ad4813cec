import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors


def test_dropout_deterministic_and_rate():
  layer = nn.Dropout(rate=0.25)
  x = jnp.ones((200, 50))
  assert layer.apply({}, x, deterministic=True) is x
  y = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
  assert abs(float((y == 0).mean()) - 0.25) < 0.02
  np.testing.assert_allclose(y[y != 0], 1 / 0.75)
  y2 = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
  np.testing.assert_array_equal(y, y2)
  y3 = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
  assert not jnp.array_equal(y, y3)


def test_dropout_broadcast_dims_rng_collection_and_explicit_rng():
  x = jnp.ones((4, 6))
  layer = nn.Dropout(0.5, broadcast_dims=(0,), deterministic=False, rng_collection="noise")
  y = layer.apply({}, x, rngs={"noise": jax.random.key(2)})
  assert (y == y[:1]).all()
  z = nn.Dropout(0.5).apply({}, x, deterministic=False, rng=jax.random.key(3))
  assert set(np.unique(z).tolist()) <= {0.0, 2.0}


def test_dropout_needs_rng_and_deterministic_flag():
  with pytest.raises(errors.FlaxenError):
    nn.Dropout(0.5).apply({}, jnp.ones(3))  # deterministic given nowhere
  with pytest.raises(errors.FlaxenError):
    nn.Dropout(0.5).apply({}, jnp.ones(3), deterministic=False)  # no 'dropout' rng
  assert not nn.Dropout(1.0).apply({}, jnp.ones(3), deterministic=False).any()
