"""ops.weight_norm and ops.fp8 against NumPy references (norms, SVD, e4m3 rounding)."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from flaxen.ops import fp8, weight_norm

W = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)


def test_weight_norm_per_feature_and_global():
  scale = np.array([1.0, 2.0, 3.0], np.float32)
  out = weight_norm.weight_norm(jnp.asarray(W), jnp.asarray(scale), feature_axes=(1,))
  ref = W / np.linalg.norm(W, axis=0) * scale
  np.testing.assert_allclose(out, ref, rtol=1e-5)  # float32 rsqrt vs NumPy's sqrt
  out = weight_norm.weight_norm(jnp.asarray(W), None, feature_axes=None)
  np.testing.assert_allclose(out, W / np.linalg.norm(W), rtol=1e-5)


def test_spectral_normalize_converges_to_the_top_singular_value():
  u0 = jnp.ones((1, 3))
  out, _, sigma = weight_norm.spectral_normalize(jnp.asarray(W), u0, n_steps=50)
  top = np.linalg.svd(W, compute_uv=False)[0]
  # 50 power iterations on a 4x3 Gaussian matrix: well inside 1e-4 of the SVD.
  np.testing.assert_allclose(float(sigma), top, rtol=1e-4)
  np.testing.assert_allclose(out, W / top, rtol=1e-4)


def test_qdq_rounds_to_e4m3_and_clips():
  x = np.array([0.3, -1.7, 500.0, 13.3], np.float32)
  scale = np.float32(2.0)
  ref = np.clip(x / scale, -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
  out = fp8.qdq(jnp.asarray(x), jnp.float8_e4m3fn, jnp.array([scale]), jnp.float32)
  np.testing.assert_array_equal(out, ref * scale)


def test_scale_from_history_and_history_roll():
  history = jnp.array([2.0, 8.0, 0.0])
  new_scale = fp8.compute_scale(jnp.max(history), jnp.array([1.0]), fp8.fp8_max(jnp.float8_e4m3fn))
  np.testing.assert_allclose(new_scale, 8.0 / 448.0, rtol=1e-6)
  rolled = fp8.amax_history_update(jnp.array([-5.0, 3.0]), history)
  assert rolled.tolist() == [5.0, 0.0, 2.0]


def test_custom_vjps_return_the_new_scale_and_history_as_gradients():
  x, scale, hist = jnp.array([1.0, -4.0]), jnp.array([1.0]), jnp.zeros(3)
  gx, gs, gh = jax.grad(lambda x, s, h: fp8.in_qdq(jnp.float32, jnp.float8_e4m3fn, x, s, h).sum(),
                        argnums=(0, 1, 2))(x, scale, hist)
  assert gx.tolist() == [1.0, 1.0]                 # straight through
  assert gs.tolist() == [1.0] and gh.tolist() == [4.0, 0.0, 0.0]
  g = jnp.array([0.1, 3.0])
  _, vjp = jax.vjp(lambda y, s, h: fp8.out_qdq(jnp.float32, jnp.float8_e5m2, y, s, h),
                   x, scale, hist)
  gy, _, gh = vjp(g)
  ref = np.asarray(g).astype(ml_dtypes.float8_e5m2).astype(np.float32)
  np.testing.assert_array_equal(gy, ref)           # the gradient quantized to e5m2
  assert gh.tolist() == [3.0, 0.0, 0.0]
