"""Activations, PReLU, pooling re-exports and Sequential."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors


def rand(shape, seed=0):
  """Standard-normal test data from NumPy (jax.random compiles once per shape: slow)."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)



def test_activation_names_exist():
  for name in ("relu", "gelu", "silu", "swish", "softmax", "log_softmax", "sigmoid", "tanh",
               "elu", "leaky_relu", "celu", "selu", "glu", "hard_tanh", "relu6", "softplus",
               "soft_sign", "log_sigmoid", "one_hot", "standardize", "logsumexp",
               "hard_sigmoid", "hard_silu", "hard_swish"):
    assert callable(getattr(nn, name)), name
  np.testing.assert_allclose(nn.gelu(jnp.array(1.0)), jax.nn.gelu(1.0))


def test_prelu():
  layer = nn.PReLU()
  x = jnp.array([-2.0, 0.0, 3.0])
  v = layer.init(jax.random.key(0), x)
  assert v["params"]["negative_slope"].shape == ()
  np.testing.assert_allclose(v["params"]["negative_slope"], 0.01)
  np.testing.assert_allclose(layer.apply(v, x), [-0.02, 0.0, 3.0], rtol=1e-6)


def test_pooling_reexports():
  x = jnp.arange(8.0).reshape(1, 4, 2, 1)
  np.testing.assert_allclose(nn.max_pool(x, (2, 2))[0, :, 0, 0], [3.0, 5.0, 7.0])
  np.testing.assert_allclose(nn.avg_pool(x, (2, 1), strides=(2, 1))[0, :, :, 0],
                             [[1.0, 2.0], [5.0, 6.0]])
  np.testing.assert_allclose(nn.min_pool(x, (4, 2)), [[[[0.0]]]])
  assert nn.pool is not None


def test_sequential_chains_layers_and_unpacks():
  model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
  x = rand((4, 5), 1)
  v = model.init(jax.random.key(0), x)
  assert set(v["params"]) == {"layers_0", "layers_2"}
  p = v["params"]
  h = jnp.maximum(x @ p["layers_0"]["kernel"] + p["layers_0"]["bias"], 0)
  ref = h @ p["layers_2"]["kernel"] + p["layers_2"]["bias"]
  np.testing.assert_allclose(model.apply(v, x), ref, rtol=1e-5, atol=1e-6)
  pair = nn.Sequential([lambda a: (a, a + 1), lambda a, b: a * b])
  assert pair.apply({}, jnp.array(2.0)) == 6.0
  kw = nn.Sequential([lambda a: {"x": a, "y": 3.0}, lambda x, y: x - y])
  assert kw.apply({}, jnp.array(5.0)) == 2.0
  with pytest.raises(errors.EmptySequentialError):
    nn.Sequential([]).apply({}, x)
