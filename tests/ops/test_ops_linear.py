import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors
from flaxen.ops import linear

K = jax.random.split(jax.random.key(0), 4)


def rand(shape, seed=0):
  """Standard-normal test data from NumPy (jax.random compiles once per shape: slow)."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def test_dense_matches_matmul():
  x = rand((2, 5, 3), 0)
  w = rand((3, 4), 1)
  b = rand((4,), 2)
  np.testing.assert_allclose(linear.dense(x, w, b), x @ w + b, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(linear.dense(x, w), x @ w, rtol=1e-5, atol=1e-5)


def test_dense_dtype_and_custom_dot_general():
  x = jnp.ones((2, 3), jnp.bfloat16)
  w = jnp.ones((3, 4))
  assert linear.dense(x, w).dtype == jnp.float32
  assert linear.dense(x, w, dtype=jnp.bfloat16).dtype == jnp.bfloat16
  calls = []

  def dot(a, b, dims, precision=None):
    calls.append(precision)
    return jax.lax.dot_general(a, b, dims)

  linear.dense(x, w, precision="highest", dot_general=dot)
  assert calls == ["highest"]


def test_dense_feature_mismatch_names_layer_and_sizes():
  with pytest.raises(errors.FeatureSizeError, match=r"MyLayer.*3 input.*has 4"):
    linear.dense(jnp.ones((2, 4)), jnp.ones((3, 5)), where="MyLayer")


def test_dense_general_multi_axis_and_batch():
  x = rand((2, 3, 4, 5), 0)
  w = rand((2, 4, 5, 6, 7), 1)
  b = rand((2, 6, 7), 2)
  y = linear.dense_general(x, w, b, axis=(-2, -1), batch_dims=(0,))
  ref = jnp.einsum("btij,bijfg->btfg", x, w) + b[:, None]
  assert y.shape == (2, 3, 6, 7)
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_dense_general_non_leading_axis():
  x = rand((3, 2, 5), 0)
  w = rand((3, 4), 1)
  y = linear.dense_general(x, w, jnp.ones(4), axis=0)
  np.testing.assert_allclose(y, jnp.einsum("abc,ad->bcd", x, w) + 1, rtol=1e-5, atol=1e-5)


def test_dense_general_bad_batch_dims():
  with pytest.raises(errors.InputShapeError):
    linear.dense_general(jnp.ones((2, 3, 4)), jnp.ones((3, 4)), batch_dims=(1,))


def test_einsum_with_bias():
  x = rand((2, 3, 4), 0)
  w = rand((4, 5, 6), 1)
  assert linear.einsum_bias_shape("abc,cde->abde", w.shape) == (5, 6)
  b = rand((5, 6), 2)
  y = linear.einsum("abc,cde->abde", x, w, b)
  ref = jnp.einsum("abc,cde->abde", x, w) + b
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_einsum_ellipsis_in_inputs_and_output():
  x = rand((2, 3, 4), 0)
  w = rand((4, 5), 1)
  b = rand((5,), 2)
  assert linear.einsum_bias_shape("...c,cd->...d", w.shape) == (5,)
  y = linear.einsum("...c,cd->...d", x, w, b)
  np.testing.assert_allclose(y, x @ w + b, rtol=1e-4, atol=1e-5)
  y = linear.einsum("c...,cd->d...", jnp.moveaxis(x, -1, 0), w, b)
  np.testing.assert_allclose(y, jnp.moveaxis(x @ w + b, -1, 0), rtol=1e-4, atol=1e-5)


def test_einsum_rejects_implicit_output_and_other_operand_counts():
  for bad in ("bc,cd", "a,b,c->a", "abc->ab"):
    with pytest.raises(errors.EinsumSubscriptsError):
      linear.einsum(bad, jnp.ones((2, 3)), jnp.ones((3, 4)))
