"""NNX MultiHeadAttention: params, output against a hand-written reference, decode cache
step by step equals full causal attention, dropout, normalize_qk and sown weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx

X = np.linspace(-1, 1, 2 * 5 * 4, dtype=np.float32).reshape(2, 5, 4)


def _shapes(module):
  return {"/".join(map(str, k)): v.value.shape for k, v in nnx.to_flat_state(nnx.state(module))}


def _reference(layer, xq, xkv, mask=None):
  def proj(m, x):
    return jnp.einsum("...d,dhk->...hk", x, m.kernel.value) + m.bias.value
  q, k, v = proj(layer.query, xq), proj(layer.key, xkv), proj(layer.value, xkv)
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
  w = jax.nn.softmax(logits)
  o = jnp.einsum("bhqk,bkhd->bqhd", w, v)
  return jnp.einsum("bqhd,hdo->bqo", o, layer.out.kernel.value) + layer.out.bias.value


def _layer(**kw):
  layer = nnx.MultiHeadAttention(2, 4, qkv_features=6, out_features=3, rngs=nnx.Rngs(0), **kw)
  for i, m in enumerate((layer.query, layer.key, layer.value, layer.out)):  # nonzero biases
    m.bias.value = jnp.full(m.bias.value.shape, 0.1 * (i + 1))
  return layer


def test_params_and_self_attention_output():
  layer = _layer()
  assert _shapes(layer) == {
    "query/kernel": (4, 2, 3), "query/bias": (2, 3), "key/kernel": (4, 2, 3),
    "key/bias": (2, 3), "value/kernel": (4, 2, 3), "value/bias": (2, 3),
    "out/kernel": (2, 3, 3), "out/bias": (3,)}
  np.testing.assert_allclose(layer(X), _reference(layer, X, X), rtol=1e-5, atol=1e-6)


def test_cross_attention_with_mask():
  layer = nnx.MultiHeadAttention(2, 4, in_kv_features=3, rngs=nnx.Rngs(1))
  kv = np.linspace(0, 1, 2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
  mask = nnx.make_attention_mask(jnp.ones((2, 5)), jnp.array([[1, 1, 0], [1, 0, 0]]))
  np.testing.assert_allclose(layer(X, kv, mask=mask), _reference(layer, X, kv, mask),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(errors.NumHeadsError):
    nnx.MultiHeadAttention(3, 4, rngs=nnx.Rngs(0))


def test_decode_cache_steps_equal_full_causal_attention():
  layer = _layer(decode=True)
  full = layer(X, mask=nnx.make_causal_mask(jnp.ones((2, 5))), decode=False)
  layer.init_cache(X.shape)
  assert {k: v for k, v in _shapes(layer).items() if k.startswith("cache")} == {
    "cache_index": (), "cached_key": (2, 5, 2, 3), "cached_value": (2, 5, 2, 3)}
  step = nnx.jit(lambda m, x: m(x))
  steps = [step(layer, X[:, t:t + 1]) for t in range(5)]
  np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-6)
  assert int(layer.cache_index.value) == 5
  with pytest.raises(errors.DecodeCacheError):
    layer(X[:, :2])


def test_decode_without_cache_raises():
  with pytest.raises(errors.CacheNotInitializedError):
    _layer(decode=True)(X[:, :1])


def test_attention_dropout_uses_rngs_and_eval_disables_it():
  layer = nnx.MultiHeadAttention(2, 4, dropout_rate=0.5, deterministic=False,
                                 rngs=nnx.Rngs(0, dropout=1))
  a, b = layer(X), layer(X)
  assert not np.allclose(a, b)
  layer.eval()
  np.testing.assert_allclose(layer(X), _reference(layer, X, X), rtol=1e-5, atol=1e-6)
  layer.train()
  c = layer(X, rngs=nnx.Rngs(dropout=5))
  d = layer(X, rngs=nnx.Rngs(dropout=5))
  np.testing.assert_array_equal(c, d)


def test_normalize_qk_and_sow_weights():
  layer = nnx.MultiHeadAttention(2, 4, normalize_qk=True, rngs=nnx.Rngs(0))
  assert _shapes(layer)["query_ln/scale"] == (2,) and "query_ln/bias" not in _shapes(layer)
  y = layer(X, sow_weights=True)
  weights = layer.attention_weights.value[0]
  assert weights.shape == (2, 2, 5, 5)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  assert y.shape == (2, 5, 4)
  assert isinstance(nnx.pop(layer, nnx.Intermediate)["attention_weights"], nnx.Intermediate)


def test_functional_attention_helpers_are_exported():
  q = jnp.ones((1, 3, 2, 4))
  mask = nnx.combine_masks(nnx.make_causal_mask(jnp.ones((1, 3))), None)
  out = nnx.dot_product_attention(q, q, q, mask=mask)
  np.testing.assert_allclose(out, q, rtol=1e-6)


def test_grouped_query_attention_shares_kv_heads():
  layer = nnx.MultiHeadAttention(4, 4, qkv_features=8, num_kv_heads=2, rngs=nnx.Rngs(0))
  assert _shapes(layer)["key/kernel"] == (4, 2, 2) and _shapes(layer)["query/kernel"] == (4, 4, 2)

  def proj(m, x):
    return jnp.einsum("...d,dhk->...hk", x, m.kernel.value) + m.bias.value
  q = proj(layer.query, X)
  k, v = (jnp.repeat(proj(m, X), 2, axis=-2) for m in (layer.key, layer.value))
  w = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(2))
  expected = jnp.einsum("bqhd,hdo->bqo", jnp.einsum("bhqk,bkhd->bqhd", w, v),
                        layer.out.kernel.value) + layer.out.bias.value
  np.testing.assert_allclose(layer(X), expected, rtol=1e-5, atol=1e-6)
  layer.init_cache(X.shape)
  assert layer.cached_key.value.shape == (2, 5, 2, 2)
  full = layer(X, mask=nnx.make_causal_mask(jnp.ones((2, 5))), decode=False)
  steps = [layer(X[:, t:t + 1], decode=True) for t in range(5)]
  np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-6)
  with pytest.raises(errors.NumHeadsError, match="num_kv_heads"):
    nnx.MultiHeadAttention(4, 4, num_kv_heads=3, rngs=nnx.Rngs(0))


def test_param_metadata_and_out_initializers():
  layer = nnx.MultiHeadAttention(
    2, 4, normalize_qk=True, out_kernel_init=jax.nn.initializers.ones,
    kernel_metadata={"sharding": ("embed", "heads", None)},
    out_kernel_metadata={"sharding": ("heads", None, "embed")},
    query_ln_scale_metadata={"tag": "q"}, rngs=nnx.Rngs(0))
  assert layer.query.kernel.sharding == ("embed", "heads", None)
  assert layer.out.kernel.sharding == ("heads", None, "embed")
  assert layer.query_ln.scale.tag == "q" and layer.key_ln.scale.get_metadata() == {}
  assert (layer.out.kernel.value == 1).all() and not (layer.query.kernel.value == 1).all()


def test_dropout_without_deterministic_raises():
  layer = nnx.MultiHeadAttention(2, 4, dropout_rate=0.1, rngs=nnx.Rngs(0))
  with pytest.raises(errors.MergeParamError, match="deterministic"):
    layer(X)
  assert layer.eval()(X).shape == (2, 5, 4)
