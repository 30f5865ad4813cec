import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import flaxen.linen as nn
from flaxen import errors

K = jax.random.split(jax.random.key(5), 4)


def rand(shape, seed=0):
  """Standard-normal test data from NumPy (jax.random compiles once per shape: slow)."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def shapes(variables):
  return jax.tree.map(jnp.shape, variables)


def test_dense_params_defaults_and_output():
  layer = nn.Dense(4)
  x = rand((2, 3), 0)
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"kernel": (3, 4), "bias": (4,)}}
  assert not v["params"]["bias"].any()
  assert v["params"]["kernel"].dtype == jnp.float32
  # lecun_normal by default: same draw as the initializer called with the layer's key
  p = v["params"]
  np.testing.assert_allclose(layer.apply(v, x), x @ p["kernel"] + p["bias"], rtol=1e-5)
  assert shapes(nn.Dense(4, use_bias=False).init(K[1], x)) == {"params": {"kernel": (3, 4)}}


def test_dense_dtypes():
  x = jnp.ones((2, 3), jnp.bfloat16)
  v = nn.Dense(4, param_dtype=jnp.bfloat16).init(K[1], x)
  assert v["params"]["kernel"].dtype == jnp.bfloat16
  y = nn.Dense(4, dtype=jnp.float16).apply(nn.Dense(4).init(K[1], x), x)
  assert y.dtype == jnp.float16


def test_dense_wrong_feature_size_names_path_and_sizes():
  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(2, name="proj")(x)

  v = Net().init(K[0], jnp.ones((1, 3)))
  with pytest.raises(errors.FeatureSizeError, match=r"Dense at '/proj'.*3 input.*has 4"):
    Net().apply(v, jnp.ones((1, 4)))


def test_dense_general_shapes_and_output():
  x = rand((2, 3, 4), 0)
  layer = nn.DenseGeneral((5, 6), axis=(-2, -1))
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"kernel": (3, 4, 5, 6), "bias": (5, 6)}}
  p = v["params"]
  ref = jnp.einsum("bij,ijkl->bkl", x, p["kernel"]) + p["bias"]
  np.testing.assert_allclose(layer.apply(v, x), ref, rtol=1e-4, atol=1e-5)


def test_dense_general_batch_dims():
  x = rand((2, 3, 4), 0)
  layer = nn.DenseGeneral(5, axis=-1, batch_dims=(0,))
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"kernel": (2, 4, 5), "bias": (2, 5)}}
  p = v["params"]
  ref = jnp.einsum("bti,bio->bto", x, p["kernel"]) + p["bias"][:, None]
  np.testing.assert_allclose(layer.apply(v, x), ref, rtol=1e-4, atol=1e-5)


def test_einsum_layer():
  x = rand((2, 3, 4), 0)
  layer = nn.Einsum((4, 5, 6), "abc,cde->abde")
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"kernel": (4, 5, 6), "bias": (5, 6)}}
  p = v["params"]
  ref = jnp.einsum("abc,cde->abde", x, p["kernel"]) + p["bias"]
  np.testing.assert_allclose(layer.apply(v, x), ref, rtol=1e-4, atol=1e-5)
  late = nn.Einsum((4, 5, 6))
  np.testing.assert_allclose(late.apply(v, x, "abc,cde->abde"), ref, rtol=1e-4, atol=1e-5)


def test_conv_params_and_output():
  x = rand((2, 6, 6, 3), 0)
  layer = nn.Conv(4, (3, 3), strides=2, padding="VALID")
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"kernel": (3, 3, 3, 4), "bias": (4,)}}
  p = v["params"]
  ref = lax.conv_general_dilated(x, p["kernel"], (2, 2), "VALID",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]
  np.testing.assert_allclose(layer.apply(v, x), ref, rtol=1e-4, atol=1e-5)
  # unbatched input through the same params
  np.testing.assert_allclose(layer.apply(v, x[0]), ref[0], rtol=1e-4, atol=1e-5)


def test_conv_groups_mask_and_errors():
  x = jnp.ones((1, 5, 4))
  v = nn.Conv(6, (3,), feature_group_count=2).init(K[1], x)
  assert shapes(v)["params"]["kernel"] == (3, 2, 6)
  mask = jnp.zeros((3, 2, 6)).at[1].set(1.0)
  masked = nn.Conv(6, (3,), feature_group_count=2, mask=mask, use_bias=False)
  vm = masked.init(K[1], x)
  centre = vm["params"]["kernel"][1]
  ref = jnp.concatenate([x[..., :2] @ centre[:, :3], x[..., 2:] @ centre[:, 3:]], axis=-1)
  np.testing.assert_allclose(masked.apply(vm, x), ref, rtol=1e-5)
  # An int kernel_size means one spatial dim, as in Flax.
  v_int, v_seq = nn.Conv(2, 3).init(K[0], x), nn.Conv(2, (3,)).init(K[0], x)
  np.testing.assert_array_equal(v_int["params"]["kernel"], v_seq["params"]["kernel"])
  v1 = v_seq
  with pytest.raises(errors.FeatureSizeError, match="4 input.*has 5"):
    nn.Conv(2, (3,)).apply(v1, jnp.ones((1, 5, 5)))


@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_conv_transpose_layer(transpose_kernel):
  x = rand((2, 4, 3), 0)
  layer = nn.ConvTranspose(5, (3,), strides=(2,), padding="VALID",
                           transpose_kernel=transpose_kernel)
  v = layer.init(K[1], x)
  kshape = (3, 5, 3) if transpose_kernel else (3, 3, 5)
  assert shapes(v) == {"params": {"kernel": kshape, "bias": (5,)}}
  p = v["params"]
  ref = lax.conv_transpose(x, p["kernel"], (2,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"),
                           transpose_kernel=transpose_kernel) + p["bias"]
  np.testing.assert_allclose(layer.apply(v, x), ref, rtol=1e-4, atol=1e-5)


def test_embed_lookup_and_attend():
  layer = nn.Embed(num_embeddings=7, features=3)
  ids = jnp.array([[1, 6], [0, 0]])
  v = layer.init(K[0], ids)
  assert shapes(v) == {"params": {"embedding": (7, 3)}}
  table = v["params"]["embedding"]
  np.testing.assert_allclose(layer.apply(v, ids), table[ids])
  q = rand((2, 3), 1)
  np.testing.assert_allclose(layer.apply(v, q, method=layer.attend), q @ table.T, rtol=1e-5)
  with pytest.raises(errors.InputShapeError, match="integer"):
    layer.apply(v, jnp.ones((2,)))


def test_conv_local_params_and_output():
  from flaxen.ops.conv import conv_local

  x = rand((2, 5, 3), 0)
  layer = nn.ConvLocal(4, (3,), padding="VALID")
  v = layer.init(K[1], x)
  assert shapes(v) == {"params": {"kernel": (3, 9, 4), "bias": (3, 4)}}
  p = v["params"]
  ref = jnp.stack([jnp.transpose(x[:, o:o + 3], (0, 2, 1)).reshape(2, 9) @ p["kernel"][o]
                   for o in range(3)], 1) + p["bias"]
  np.testing.assert_allclose(layer.apply(v, x), ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(conv_local(x, p["kernel"], p["bias"], kernel_size=(3,),
                                        padding="VALID"), ref, rtol=1e-4, atol=1e-5)


def test_partitioned_kernels_keep_their_box():
  init = nn.with_partitioning(nn.initializers.lecun_normal(), ("in", "heads", "depth"))
  layer = nn.DenseGeneral((2, 3), kernel_init=init)
  v = layer.init(K[0], jnp.ones((2, 4)))
  assert nn.get_partition_spec(v)["params"]["kernel"] == jax.sharding.PartitionSpec(
    "in", "heads", "depth")
  kernel = v["params"]["kernel"].unbox()
  assert kernel.shape == (4, 2, 3)
  np.testing.assert_allclose(layer.apply(v, jnp.ones((1, 4)))[0], kernel.sum(0), rtol=1e-5)
  with pytest.raises(errors.FeatureSizeError):
    layer.apply(v, jnp.ones((1, 5)))
