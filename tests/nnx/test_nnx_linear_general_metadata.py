"""Initializers with metadata (``nnx.with_partitioning``) through LinearGeneral's flattened
initialization, which reshapes the initializer's result."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from flaxen import nnx


def test_linear_general_keeps_partitioning_metadata_and_values():
  init = nnx.initializers.lecun_normal()
  names = (None, None, "model", None)
  boxed = nnx.LinearGeneral((2, 3), (4, 5), axis=(-2, -1), rngs=nnx.Rngs(0),
                            kernel_init=nnx.with_partitioning(init, names))
  plain = nnx.LinearGeneral((2, 3), (4, 5), axis=(-2, -1), rngs=nnx.Rngs(0), kernel_init=init)
  assert boxed.kernel.value.shape == (2, 3, 4, 5)
  assert boxed.kernel.get_metadata()["sharding_names"] == names
  np.testing.assert_array_equal(boxed.kernel.value, plain.kernel.value)
  specs = nnx.get_partition_spec(nnx.state(boxed))
  assert specs["kernel"].value == P(*names)
  x = jax.random.normal(jax.random.key(1), (2, 2, 3))
  np.testing.assert_allclose(boxed(x), plain(x), rtol=1e-6)


def test_attention_projections_accept_partitioned_kernel_init():
  init = nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, "model", None))
  attn = nnx.MultiHeadAttention(num_heads=2, in_features=8, qkv_features=8, decode=False,
                                kernel_init=init, rngs=nnx.Rngs(0))
  assert attn.query.kernel.value.shape == (8, 2, 4)
  assert attn.query.kernel.get_metadata()["sharding_names"] == (None, "model", None)
  assert attn(jnp.ones((1, 3, 8))).shape == (1, 3, 8)
