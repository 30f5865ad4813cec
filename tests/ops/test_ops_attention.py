import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors
from flaxen.ops import attention as attn

K = jax.random.split(jax.random.key(3), 4)


def rand(shape, seed=0):
  """Standard-normal test data from NumPy (jax.random compiles once per shape: slow)."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@jax.jit
def ref_attention(q, k, v, bias=None, mask=None):
  b, lq, h, d = q.shape
  out = jnp.zeros((b, lq, h, v.shape[-1]))
  for bi in range(b):
    for hi in range(h):
      logits = q[bi, :, hi] @ k[bi, :, hi].T / np.sqrt(d)
      if bias is not None:
        logits = logits + bias[bi, hi]
      if mask is not None:
        logits = jnp.where(mask[bi, 0] > 0, logits, -1e30)
      w = jnp.exp(logits - logits.max(-1, keepdims=True))
      w = w / w.sum(-1, keepdims=True)
      out = out.at[bi, :, hi].set(w @ v[bi, :, hi])
  return out


def test_attention_matches_reference_with_bias_and_causal_mask():
  q = rand((2, 4, 2, 3), 0)
  k = rand((2, 4, 2, 3), 1)
  v = rand((2, 4, 2, 5), 2)
  bias = rand((2, 2, 4, 4), 3)
  mask = attn.make_causal_mask(jnp.ones((2, 4)))
  y = attn.dot_product_attention(q, k, v, bias=bias, mask=mask)
  np.testing.assert_allclose(y, ref_attention(q, k, v, bias, mask), rtol=1e-4, atol=1e-5)


def test_weights_rows_sum_to_one_and_sow():
  sown = {}

  class Recorder:
    def sow(self, col, name, value):
      sown[(col, name)] = value

  q = rand((3, 2, 1, 4), 0)
  w = attn.dot_product_attention_weights(q, q, module=Recorder())
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
  assert sown[("intermediates", "attention_weights")] is w


def test_dropout_on_weights_broadcast_and_rng_required():
  q = rand((2, 3, 2, 4), 0)
  full = attn.dot_product_attention_weights(q, q)
  w = attn.dot_product_attention_weights(q, q, dropout_rng=K[1], dropout_rate=0.5)
  kept = w != 0
  assert (kept == kept[:1, :1]).all()  # one mask shared across batch and heads
  np.testing.assert_allclose(jnp.where(kept, w, 0), jnp.where(kept, full * 2, 0), rtol=1e-5)
  w2 = attn.dot_product_attention_weights(q, q, dropout_rng=K[1], dropout_rate=0.5,
                                          broadcast_dropout=False)
  assert not ((w2 != 0) == (w2 != 0)[:1, :1]).all()
  with pytest.raises(errors.DropoutRngError):
    attn.dot_product_attention_weights(q, q, dropout_rate=0.5)
  det = attn.dot_product_attention_weights(q, q, dropout_rate=0.5, deterministic=True)
  np.testing.assert_allclose(det, full)


def test_dtype_and_shape_errors():
  q = jnp.ones((1, 2, 1, 4), jnp.bfloat16)
  assert attn.dot_product_attention(q, q, q).dtype == jnp.bfloat16
  assert attn.dot_product_attention(q, q, q, dtype=jnp.float32).dtype == jnp.float32
  with pytest.raises(errors.InputShapeError):
    attn.dot_product_attention(jnp.ones((1, 2, 1, 4)), jnp.ones((1, 2, 1, 3)), jnp.ones((1, 2)))


def test_masks():
  m = attn.make_attention_mask(jnp.array([[1, 1, 0]]), jnp.array([[1, 0]]))
  assert m.shape == (1, 1, 3, 2) and m.dtype == jnp.float32
  assert m[0, 0].tolist() == [[1, 0], [1, 0], [0, 0]]
  c = attn.make_causal_mask(jnp.ones((1, 3)), extra_batch_dims=1)
  assert c.shape == (1, 1, 1, 3, 3)
  assert jnp.array_equal(c[0, 0, 0], jnp.tril(jnp.ones((3, 3))))
  causal = attn.make_causal_mask(jnp.ones((1, 2)))
  pad = attn.make_attention_mask(jnp.array([[1, 0]]), jnp.array([[1, 1]]))
  both = attn.combine_masks(causal, None, pad, dtype=jnp.bool_)
  assert both.dtype == jnp.bool_ and both[0, 0].tolist() == [[True, False], [False, False]]
  assert attn.combine_masks(None, None) is None
  with pytest.raises(errors.InputShapeError):
    attn.combine_masks(jnp.ones((2, 2)), jnp.ones((1, 2, 2)))
