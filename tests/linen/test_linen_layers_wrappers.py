"""Linen WeightNorm, SpectralNorm, BatchApply and the FP8 contractions, against jnp
references over the same params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors

KEY = jax.random.key(0)
X = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4)), jnp.float32)


class _Wrapped(nn.Module):
  wrapper: str

  @nn.compact
  def __call__(self, x, **kw):
    layer = nn.Dense(3)
    if self.wrapper == "weight":
      return nn.WeightNorm(layer)(x)
    return nn.SpectralNorm(layer)(x, **kw)


def test_weight_norm_dense_matches_reference_and_names_its_scale():
  model = _Wrapped("weight")
  v = model.init(KEY, X)
  p = v["params"]
  assert p["WeightNorm_0"]["Dense_0/kernel/scale"].shape == (3,)
  p["WeightNorm_0"]["Dense_0/kernel/scale"] = jnp.array([1.0, 2.0, 3.0])
  k, b = p["Dense_0"]["kernel"], p["Dense_0"]["bias"]
  ref = X @ (k / jnp.linalg.norm(k, axis=0) * jnp.array([1.0, 2.0, 3.0])) + b
  np.testing.assert_allclose(model.apply({"params": p}, X), ref, rtol=1e-5, atol=1e-6)


def test_spectral_norm_updates_its_stats_only_when_asked():
  model = _Wrapped("spectral")
  v = model.init(KEY, X, update_stats=False)
  stats = v["batch_stats"]["SpectralNorm_0"]
  assert stats["Dense_0/kernel/u"].shape == (1, 3)
  _, same = model.apply(v, X, update_stats=False, mutable=["batch_stats"])
  np.testing.assert_array_equal(same["batch_stats"]["SpectralNorm_0"]["Dense_0/kernel/u"],
                                stats["Dense_0/kernel/u"])
  y, new = model.apply(v, X, update_stats=True, mutable=["batch_stats"])
  k = v["params"]["Dense_0"]["kernel"]
  sigma = new["batch_stats"]["SpectralNorm_0"]["Dense_0/kernel/sigma"]
  ref = X @ (k / sigma) + v["params"]["Dense_0"]["bias"]
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
  assert 0 < float(sigma) <= np.linalg.svd(np.asarray(k), compute_uv=False)[0] * (1 + 1e-5)


def test_batch_apply_merges_and_splits_leading_dims():
  seen = []

  def f(x, y):
    seen.append((x.shape, y.shape))
    return x + y

  out = nn.BatchApply(f)(jnp.ones((2, 3, 4)), jnp.ones((2, 3, 4)))
  assert seen == [((6, 4), (6, 4))] and out.shape == (2, 3, 4)
  with pytest.raises(errors.InputShapeError):
    nn.BatchApply(f)(jnp.ones((2, 3, 4)), jnp.ones((3, 2, 4)))


def test_fp8_dense_forward_and_overwrite_with_gradient():
  layer = nn.Dense(3, dot_general_cls=nn.Fp8DotGeneral)
  v = layer.init(KEY, X)
  owg = v["_overwrite_with_gradient"]["Fp8DirectDotGeneralOp_0"]
  assert owg["input_amax_history"].shape == (1024,) and owg["input_scale"].tolist() == [1.0]
  y = layer.apply(v, X)
  k, b = v["params"]["kernel"], v["params"]["bias"]
  q = lambda a: a.astype(jnp.float8_e4m3fn).astype(jnp.float32)  # noqa: E731
  np.testing.assert_allclose(y, q(X) @ q(k) + b, rtol=1e-6, atol=1e-6)  # scale 1: plain e4m3
  grads = jax.grad(lambda v: layer.apply(v, X).sum())(v)
  g = grads["_overwrite_with_gradient"]["Fp8DirectDotGeneralOp_0"]
  # The new histories start with this call's absolute maxima.
  np.testing.assert_allclose(g["input_amax_history"][0], jnp.max(jnp.abs(X)))
  np.testing.assert_allclose(g["kernel_amax_history"][0], jnp.max(jnp.abs(k)))


def test_fp8_einsum_in_attention():
  mha = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4,
                                        qk_attn_weights_einsum_cls=nn.Fp8Einsum,
                                        attn_weights_value_einsum_cls=nn.Fp8Einsum)
  x = jnp.ones((1, 3, 4))
  v = mha.init(KEY, x)
  assert len(v["_overwrite_with_gradient"]) == 2
  assert mha.apply(v, x).shape == (1, 3, 4)
