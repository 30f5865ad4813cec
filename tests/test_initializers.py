"""flaxen.initializers: the orthogonal initializers in half precision (computed in float32,
since JAX 0.12's QR rejects bfloat16 and float16) and unchanged from JAX's elsewhere."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import initializers


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_orthogonal_half_precision(dtype):
  w = initializers.orthogonal(scale=2.0)(jax.random.key(0), (5, 4), dtype)
  assert w.dtype == dtype
  ref = jax.nn.initializers.orthogonal(scale=2.0)(jax.random.key(0), (5, 4), jnp.float32)
  # The float32 result rounded once: within half a bfloat16 ulp (2^-8 relative; float16 is finer).
  np.testing.assert_allclose(np.asarray(w, np.float32), ref, rtol=2**-8, atol=0)
  wf = np.asarray(w, np.float32)
  np.testing.assert_allclose(wf.T @ wf, 4 * np.eye(4), atol=0.05)  # columns orthogonal


def test_delta_orthogonal_half_precision():
  shape = (3, 3, 4, 4)
  w = initializers.delta_orthogonal()(jax.random.key(1), shape, jnp.bfloat16)
  ref = jax.nn.initializers.delta_orthogonal()(jax.random.key(1), shape, jnp.float32)
  assert w.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(w, np.float32), np.asarray(ref.astype(jnp.bfloat16),
                                                                      np.float32))


def test_float32_and_default_match_jax():
  key = jax.random.key(2)
  for ours, theirs in [(initializers.orthogonal, jax.nn.initializers.orthogonal),
                       (initializers.delta_orthogonal, jax.nn.initializers.delta_orthogonal)]:
    shape = (3, 3, 2, 2)
    np.testing.assert_array_equal(ours()(key, shape), theirs()(key, shape))
    np.testing.assert_array_equal(ours(dtype=jnp.float32)(key, shape),
                                  theirs()(key, shape, jnp.float32))
