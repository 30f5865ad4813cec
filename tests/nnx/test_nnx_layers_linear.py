"""NNX Linear, LinearGeneral, Einsum, Embed, Conv and ConvTranspose: param names, shapes and
defaults, and outputs against hand-written jnp references over the same params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from flaxen import errors, nnx

X = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 10


def _shapes(module):
  return {"/".join(map(str, k)): v.value.shape for k, v in nnx.to_flat_state(nnx.state(module))}


def test_linear_params_defaults_and_output():
  layer = nnx.Linear(4, 5, rngs=nnx.Rngs(0))
  assert _shapes(layer) == {"kernel": (4, 5), "bias": (5,)}
  expected = jax.nn.initializers.lecun_normal()(
    jax.random.fold_in(jax.random.key(0), 0), (4, 5), jnp.float32)
  np.testing.assert_array_equal(layer.kernel.value, expected)
  layer.bias.value = jnp.arange(5.0)
  np.testing.assert_allclose(layer(X), X @ layer.kernel.value + jnp.arange(5.0), rtol=1e-5)


def test_linear_wrong_feature_size_names_layer_and_sizes():
  layer = nnx.Linear(4, 5, rngs=nnx.Rngs(0))
  with pytest.raises(errors.FeatureSizeError, match=r"Linear.*4 input feature.*has 3"):
    layer(jnp.ones((2, 3)))


def test_linear_general_multi_axis_and_batch_axis():
  layer = nnx.LinearGeneral((3, 4), (2, 5), axis=(-2, -1), rngs=nnx.Rngs(0))
  assert _shapes(layer) == {"kernel": (3, 4, 2, 5), "bias": (2, 5)}
  layer.bias.value = jnp.ones((2, 5))
  expected = jnp.einsum("bij,ijkl->bkl", X, layer.kernel.value) + 1
  np.testing.assert_allclose(layer(X), expected, rtol=1e-5)
  batched = nnx.LinearGeneral(4, 6, axis=-1, batch_axis={0: 2}, rngs=nnx.Rngs(1))
  assert _shapes(batched) == {"kernel": (2, 4, 6), "bias": (2, 6)}
  expected = jnp.einsum("bij,bjk->bik", X, batched.kernel.value) + batched.bias.value[:, None]
  np.testing.assert_allclose(batched(X), expected, rtol=1e-5)


def test_linear_general_initializes_flattened_kernel():
  layer = nnx.LinearGeneral((3, 4), 5, axis=(-2, -1), rngs=nnx.Rngs(0))
  flat = jax.nn.initializers.lecun_normal()(
    jax.random.fold_in(jax.random.key(0), 0), (12, 5), jnp.float32)
  np.testing.assert_array_equal(layer.kernel.value, flat.reshape(3, 4, 5))


def test_einsum_with_bias_and_call_time_subscripts():
  layer = nnx.Einsum("bti,iho->btho", (4, 2, 3), (2, 3), rngs=nnx.Rngs(0))
  assert _shapes(layer) == {"kernel": (4, 2, 3), "bias": (2, 3)}
  layer.bias.value = jnp.arange(6.0).reshape(2, 3)
  expected = jnp.einsum("bti,iho->btho", X, layer.kernel.value) + layer.bias.value
  np.testing.assert_allclose(layer(X), expected, rtol=1e-5)
  no_bias = nnx.Einsum("ab,bc->ac", (4, 3), rngs=nnx.Rngs(0))
  assert no_bias.bias is None
  np.testing.assert_allclose(no_bias(X[0], "ab,bc->ac"), X[0] @ no_bias.kernel.value, rtol=1e-5)


def test_embed_lookup_and_attend():
  embed = nnx.Embed(6, 3, rngs=nnx.Rngs(0))
  assert _shapes(embed) == {"embedding": (6, 3)}
  ids = jnp.array([[0, 5], [2, 2]])
  np.testing.assert_array_equal(embed(ids), embed.embedding.value[ids])
  q = jnp.arange(6.0).reshape(2, 3)
  np.testing.assert_allclose(embed.attend(q), q @ embed.embedding.value.T, rtol=1e-5)
  expected = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)(
    jax.random.fold_in(jax.random.key(0), 0), (6, 3), jnp.float32)
  np.testing.assert_array_equal(embed.embedding.value, expected)


def _conv_ref(x, kernel, bias, strides, padding, groups=1):
  y = lax.conv_general_dilated(x, kernel, strides, padding,
                               dimension_numbers=("NHWC", "HWIO", "NHWC"),
                               feature_group_count=groups)
  return y + bias


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_2d_against_lax(padding):
  x = np.arange(2 * 5 * 5 * 4, dtype=np.float32).reshape(2, 5, 5, 4) / 100
  conv = nnx.Conv(4, 6, (3, 3), strides=2, padding=padding, rngs=nnx.Rngs(0))
  assert _shapes(conv) == {"kernel": (3, 3, 4, 6), "bias": (6,)}
  conv.bias.value = jnp.arange(6.0)
  expected = _conv_ref(x, conv.kernel.value, conv.bias.value, (2, 2), padding)
  np.testing.assert_allclose(conv(x), expected, rtol=1e-5, atol=1e-6)


def test_conv_groups_int_kernel_size_and_mask():
  x = np.linspace(-1, 1, 2 * 7 * 4, dtype=np.float32).reshape(2, 7, 4)
  conv = nnx.Conv(4, 2, 3, feature_group_count=2, use_bias=False, rngs=nnx.Rngs(0))
  assert _shapes(conv) == {"kernel": (3, 2, 2)}
  expected = lax.conv_general_dilated(x, conv.kernel.value, (1,), "SAME",
                                      dimension_numbers=("NWC", "WIO", "NWC"),
                                      feature_group_count=2)
  np.testing.assert_allclose(conv(x), expected, rtol=1e-5, atol=1e-6)
  mask = jnp.zeros((3, 2, 2)).at[0].set(1)
  masked = nnx.Conv(4, 2, (3,), feature_group_count=2, mask=mask, rngs=nnx.Rngs(0))
  expected = lax.conv_general_dilated(x, masked.kernel.value * mask, (1,), "SAME",
                                      dimension_numbers=("NWC", "WIO", "NWC"),
                                      feature_group_count=2)
  np.testing.assert_allclose(masked(x), expected, rtol=1e-5, atol=1e-6)


def test_conv_wrong_feature_size():
  conv = nnx.Conv(4, 2, (3,), rngs=nnx.Rngs(0))
  with pytest.raises(errors.FeatureSizeError, match="Conv"):
    conv(jnp.ones((1, 5, 3)))


def test_conv_transpose_against_lax_and_transpose_kernel():
  x = np.linspace(-1, 1, 2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
  up = nnx.ConvTranspose(3, 5, (3,), strides=2, rngs=nnx.Rngs(0))
  assert _shapes(up) == {"kernel": (3, 3, 5), "bias": (5,)}
  expected = lax.conv_transpose(x, up.kernel.value, (2,), "SAME",
                                dimension_numbers=("NWC", "WIO", "NWC"))
  np.testing.assert_allclose(up(x), expected, rtol=1e-5, atol=1e-6)
  flipped = nnx.ConvTranspose(3, 5, (3,), transpose_kernel=True, rngs=nnx.Rngs(0))
  assert flipped.kernel.value.shape == (3, 5, 3)
  expected = lax.conv_transpose(x, flipped.kernel.value, (1,), "SAME",
                                dimension_numbers=("NWC", "WIO", "NWC"), transpose_kernel=True)
  np.testing.assert_allclose(flipped(x), expected, rtol=1e-5, atol=1e-6)


def test_layers_train_under_jit_and_grad():
  model = nnx.Sequential(nnx.Linear(4, 8, rngs=nnx.Rngs(0)), nnx.relu,
                         nnx.Linear(8, 1, rngs=nnx.Rngs(1)))

  @nnx.jit
  def step(model, x):
    loss, grads = nnx.value_and_grad(lambda m: (m(x) ** 2).mean())(model)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads))
    return loss

  losses = [float(step(model, X)) for _ in range(3)]
  assert losses[2] < losses[0]
  assert set(_shapes(model)) == {"layers/0/kernel", "layers/0/bias", "layers/2/kernel",
                                 "layers/2/bias"}


def test_param_metadata_is_attached():
  layer = nnx.Linear(2, 3, kernel_metadata={"sharding": (None, "model")},
                     bias_metadata={"sharding": ("model",)}, rngs=nnx.Rngs(0))
  assert layer.kernel.sharding == (None, "model") and layer.bias.sharding == ("model",)
  conv = nnx.Conv(2, 3, (3,), kernel_metadata={"tag": 1}, rngs=nnx.Rngs(0))
  assert conv.kernel.get_metadata() == {"tag": 1}
  embed = nnx.Embed(4, 2, embedding_metadata={"sharding": ("vocab", None)}, rngs=nnx.Rngs(0))
  assert embed.embedding.sharding == ("vocab", None)
  norm = nnx.LayerNorm(3, scale_metadata={"sharding": ("x",)}, rngs=nnx.Rngs(0))
  assert norm.scale.sharding == ("x",) and norm.bias.get_metadata() == {}
