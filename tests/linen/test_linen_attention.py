import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors

K = jax.random.split(jax.random.key(7), 4)


def rand(shape, seed=0):
  """Standard-normal test data from NumPy (jax.random compiles once per shape: slow)."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def ref_mha(p, xq, xkv, mask=None):
  """Hand-written multi-head attention with the layer's params."""
  def proj(name, x):
    return jnp.einsum("bld,dhk->blhk", x, p[name]["kernel"]) + p[name]["bias"]

  q, k, v = proj("query", xq), proj("key", xkv), proj("value", xkv)
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(q.shape[-1])
  if mask is not None:
    logits = jnp.where(mask, logits, -1e30)
  w = jax.nn.softmax(logits)
  out = jnp.einsum("bhqk,bkhd->bqhd", w, v)
  return jnp.einsum("bqhd,hdo->bqo", out, p["out"]["kernel"]) + p["out"]["bias"]


def test_param_shapes_and_cross_attention_output():
  layer = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=6, out_features=5)
  xq = rand((2, 3, 4), 0)
  xkv = rand((2, 7, 4), 1)
  v = layer.init(K[2], xq, xkv)
  s = jax.tree.map(jnp.shape, v["params"])
  assert s == {
    "query": {"kernel": (4, 2, 3), "bias": (2, 3)},
    "key": {"kernel": (4, 2, 3), "bias": (2, 3)},
    "value": {"kernel": (4, 2, 3), "bias": (2, 3)},
    "out": {"kernel": (2, 3, 5), "bias": (5,)},
  }
  np.testing.assert_allclose(layer.apply(v, xq, xkv), ref_mha(v["params"], xq, xkv),
                             rtol=1e-4, atol=1e-5)
  # inputs_v defaults to inputs_k; inputs_kv is the older spelling of both
  np.testing.assert_allclose(layer.apply(v, xq, inputs_kv=xkv), layer.apply(v, xq, xkv))


def test_self_attention_with_mask_and_sow():
  layer = nn.SelfAttention(num_heads=2)
  x = rand((1, 4, 4), 0)
  v = layer.init(K[2], x)
  mask = nn.make_causal_mask(jnp.ones((1, 4)))
  y, state = layer.apply(v, x, mask=mask, sow_weights=True, mutable=["intermediates"])
  np.testing.assert_allclose(y, ref_mha(v["params"], x, x, mask), rtol=1e-4, atol=1e-5)
  (weights,) = state["intermediates"]["attention_weights"]
  assert weights.shape == (1, 2, 4, 4)
  np.testing.assert_allclose(jnp.triu(weights[0, 0], 1), 0.0, atol=1e-7)
  # A subclass, as in Flax: its default name differs, its behaviour does not.
  assert issubclass(nn.MultiHeadAttention, nn.MultiHeadDotProductAttention)


def test_decode_cache_matches_causal_attention_step_by_step():
  layer = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4)
  decoder = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4, decode=True)
  x = rand((2, 5, 4), 0)
  params = layer.init(K[2], x)["params"]
  full = layer.apply({"params": params}, x, mask=nn.make_causal_mask(jnp.ones((2, 5))))
  cache = decoder.init(K[2], x)["cache"]
  assert cache["cached_key"].shape == (2, 5, 2, 2) and int(cache["cache_index"]) == 0
  for t in range(5):
    y, upd = decoder.apply({"params": params, "cache": cache}, x[:, t:t + 1], mutable=["cache"])
    cache = upd["cache"]
    np.testing.assert_allclose(y[:, 0], full[:, t], rtol=1e-4, atol=1e-5)
  assert int(cache["cache_index"]) == 5
  with pytest.raises(errors.DecodeCacheError):
    decoder.apply({"params": params, "cache": cache}, x[:, :2], mutable=["cache"])


def test_attention_dropout_and_errors():
  layer = nn.SelfAttention(num_heads=1, dropout_rate=0.5)
  x = rand((1, 3, 2), 0)
  v = layer.init(K[1], x, deterministic=True)
  det = layer.apply(v, x, deterministic=True)
  a = layer.apply(v, x, deterministic=False, rngs={"dropout": K[2]})
  b = layer.apply(v, x, deterministic=False, rngs={"dropout": K[2]})
  np.testing.assert_array_equal(a, b)
  assert not jnp.allclose(a, det)
  with pytest.raises(errors.NumHeadsError):
    nn.SelfAttention(num_heads=3, qkv_features=4).init(K[1], x)
  with pytest.raises(errors.AttentionInputsError):
    nn.MultiHeadDotProductAttention(num_heads=1).init(K[1], x, inputs_v=x)


def test_decode_and_dropout_under_jit():
  decoder = nn.MultiHeadDotProductAttention(num_heads=1, qkv_features=2, dropout_rate=0.1,
                                            decode=True, deterministic=False)
  x = rand((1, 3, 2), 0)
  v = decoder.init({"params": K[1], "dropout": K[2]}, x)

  @jax.jit
  def step(variables, token, key):
    return decoder.apply(variables, token, mutable=["cache"], rngs={"dropout": key})

  cache = v["cache"]
  for t in range(3):
    y, upd = step({"params": v["params"], "cache": cache}, x[:, t:t + 1], K[3])
    cache = upd["cache"]
    assert y.shape == (1, 1, 2) and bool(jnp.isfinite(y).all())
  assert int(cache["cache_index"]) == 3
