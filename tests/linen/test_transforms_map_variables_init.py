"""nn.map_variables(init=True): init creates the variables, then runs on the mapped view."""

import jax
import jax.numpy as jnp
import numpy as np

import flaxen.linen as nn


def test_init_output_and_stored_variables_are_the_mapped_view():
  sign = lambda tree: jax.tree.map(jnp.sign, tree)

  class BitDense(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.map_variables(nn.Dense, "params", sign, init=True)(3)(x)

  x = jnp.array([[1.0, -2.0]])
  y, v = BitDense().init_with_output(jax.random.key(0), x)
  kernel = v["params"]["MapVariablesDense_0"]["kernel"]
  assert set(np.unique(np.asarray(kernel))) <= {-1.0, 0.0, 1.0}  # stored: trans_out(sign(w))
  np.testing.assert_array_equal(y, x @ kernel)  # exact: small integers in float32
  np.testing.assert_array_equal(BitDense().apply(v, x), y)
