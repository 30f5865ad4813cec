"""NNX attention's is_causal and promote rule, set_view on layers, and LinearGeneral's
sorted axes; references written with jnp."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx
from flaxen.ops import attention as attn

R = np.random.default_rng(0)
Q, K, V = (jnp.asarray(R.normal(size=(1, 3, 2, 4)), jnp.float32) for _ in range(3))


def _reference(q, k, v, mask):
  logits = jnp.einsum("bqhd,bkhd->bhqk", q / jnp.sqrt(4.0), k)
  logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
  return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits), v)


def test_is_causal_matches_a_lower_triangular_mask():
  mask = jnp.tril(jnp.ones((3, 3), bool))
  out = nnx.dot_product_attention(Q, K, V, is_causal=True)
  np.testing.assert_allclose(out, _reference(Q, K, V, mask), rtol=1e-5, atol=1e-6)
  layer = nnx.MultiHeadAttention(2, 4, decode=False, rngs=nnx.Rngs(0))
  x = jnp.asarray(R.normal(size=(1, 3, 4)), jnp.float32)
  causal = nnx.make_causal_mask(jnp.ones((1, 3)))
  np.testing.assert_allclose(layer(x, is_causal=True), layer(x, mask=causal), rtol=1e-5,
                             atol=1e-6)


def test_nnx_attention_promote_rule():
  seen = []

  def rule(args, dtype=None):
    seen.append(len(args))
    return tuple(jnp.asarray(a, jnp.bfloat16) for a in args)

  assert nnx.dot_product_attention(Q, K, V, promote_dtype=rule).dtype == jnp.bfloat16
  assert seen == [3]


def test_replacement_einsums_are_given_together_and_without_precision():
  with pytest.raises(errors.AttentionEinsumError, match="only one"):
    attn.dot_product_attention(Q, K, V, qk_attn_weights_einsum=jnp.einsum)
  with pytest.raises(errors.AttentionEinsumError, match="precision"):
    attn.dot_product_attention(Q, K, V, precision="highest", qk_attn_weights_einsum=jnp.einsum,
                               attn_weights_value_einsum=jnp.einsum)
  calls = []

  def einsum(eq, a, b):  # no precision parameter: it is not passed
    calls.append(eq)
    return jnp.einsum(eq, a, b)

  out = attn.dot_product_attention(Q, K, V, qk_attn_weights_einsum=einsum,
                                   attn_weights_value_einsum=einsum)
  assert len(calls) == 2
  np.testing.assert_allclose(out, _reference(Q, K, V, jnp.ones((3, 3), bool)), rtol=1e-5,
                             atol=1e-6)


def test_force_fp32_softmax_keeps_float32_weights():
  w = attn.dot_product_attention_weights(Q.astype(jnp.bfloat16), K.astype(jnp.bfloat16),
                                         force_fp32_for_softmax=True)
  assert w.dtype == jnp.float32
  w = attn.dot_product_attention_weights(Q.astype(jnp.bfloat16), K.astype(jnp.bfloat16))
  assert w.dtype == jnp.bfloat16


def test_set_view_through_nnx_view():
  model = nnx.Sequential(nnx.Linear(2, 2, rngs=nnx.Rngs(0)),
                         nnx.BatchNorm(2, rngs=nnx.Rngs(0)),
                         nnx.Dropout(0.5, rngs=nnx.Rngs(0)))
  view = nnx.view(model, use_running_average=True, deterministic=True)
  assert view.layers[1].use_running_average and view.layers[2].deterministic
  assert not model.layers[1].use_running_average and not model.layers[2].deterministic


def test_linear_general_sorts_its_axes():
  x = jnp.asarray(R.normal(size=(2, 3, 4)), jnp.float32)
  layer = nnx.LinearGeneral((3, 4), 5, axis=(-1, 1), rngs=nnx.Rngs(0))
  k, b = layer.kernel.value, layer.bias.value
  np.testing.assert_allclose(layer(x), jnp.einsum("bij,ijo->bo", x, k) + b, rtol=1e-5,
                             atol=1e-6)
