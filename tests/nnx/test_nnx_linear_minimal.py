"""The minimal nnx.Linear the core ships with (layers proper live in nnx.nn)."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import nnx


def test_linear_matches_hand_written_affine_map():
  layer = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  x = jnp.arange(12.0).reshape(4, 3)
  np.testing.assert_allclose(layer(x), x @ layer.kernel.value + layer.bias.value, rtol=1e-6)
  assert layer.kernel.value.shape == (3, 2) and not layer.bias.value.any()
  expected = jax.nn.initializers.lecun_normal()(
    jax.random.fold_in(jax.random.key(0), 0), (3, 2), jnp.float32)
  np.testing.assert_array_equal(layer.kernel.value, expected)


def test_linear_options():
  layer = nnx.Linear(3, 2, use_bias=False, dtype=jnp.bfloat16, param_dtype=jnp.float32,
                     kernel_init=jax.nn.initializers.ones, rngs=nnx.Rngs(0))
  y = layer(jnp.ones((1, 5, 3)))
  assert layer.bias is None and y.dtype == jnp.bfloat16 and y.shape == (1, 5, 2)
  np.testing.assert_array_equal(y.astype(jnp.float32), jnp.full((1, 5, 2), 3.0))
  assert set(nnx.state(layer)) == {"kernel"}
