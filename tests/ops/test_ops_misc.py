"""Dropout, pooling, embedding and activation ops."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import errors
from flaxen.ops import activations, embed, pooling, stochastic

K = jax.random.split(jax.random.key(4), 4)


def rand(shape, seed=0):
  """Standard-normal test data from NumPy (jax.random compiles once per shape: slow)."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def test_dropout_scales_survivors_and_keeps_rate():
  x = jnp.ones((100, 100))
  y = stochastic.dropout(x, 0.3, K[0])
  np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7], rtol=1e-6)
  assert abs(float((y == 0).mean()) - 0.3) < 0.03
  assert stochastic.dropout(x, 0.3, None, deterministic=True) is x
  assert stochastic.dropout(x, 0.0, None) is x
  assert not stochastic.dropout(x, 1.0, None).any()


def test_dropout_broadcast_dims_and_errors():
  y = stochastic.dropout(jnp.ones((4, 5, 6)), 0.5, K[0], broadcast_dims=(0, 2))
  assert (y == y[:1, :, :1]).all()
  with pytest.raises(errors.DropoutRngError):
    stochastic.dropout(jnp.ones(3), 0.5, None)
  with pytest.raises(errors.InvalidRateError):
    stochastic.dropout(jnp.ones(3), 1.5, K[0])


@partial(jax.jit, static_argnums=(1, 2, 3))
def ref_pool2d(x, window, stride, fn):
  n, h, w, c = x.shape
  rows = []
  for i in range(0, h - window[0] + 1, stride[0]):
    cols = [fn(x[:, i:i + window[0], j:j + window[1]], axis=(1, 2))
            for j in range(0, w - window[1] + 1, stride[1])]
    rows.append(jnp.stack(cols, 1))
  return jnp.stack(rows, 1)


@settings(max_examples=4, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2))
def test_pools_against_loops(wh, ww, stride):
  x = rand((2, 5, 4, 3), 0)
  window, strides = (wh, ww), (stride, stride)
  for op, fn in ((pooling.max_pool, jnp.max), (pooling.min_pool, jnp.min),
                 (pooling.avg_pool, jnp.mean)):
    np.testing.assert_allclose(op(x, window, strides), ref_pool2d(x, window, strides, fn),
                               rtol=1e-5, atol=1e-6)


def test_avg_pool_padding_counts_and_batch_dims():
  x = jnp.arange(1.0, 5.0).reshape(4, 1)  # unbatched, 4 positions
  incl = pooling.avg_pool(x, (2,), padding=((0, 1),))
  excl = pooling.avg_pool(x, (2,), padding=((0, 1),), count_include_pad=False)
  np.testing.assert_allclose(incl[:, 0], [1.5, 2.5, 3.5, 2.0])
  np.testing.assert_allclose(excl[:, 0], [1.5, 2.5, 3.5, 4.0])
  xb = jnp.ones((2, 3, 6, 1))
  assert pooling.max_pool(xb, (2,), (2,)).shape == (2, 3, 3, 1)
  same = pooling.avg_pool(jnp.ones((1, 5, 5, 1)), (3, 3), padding="SAME", count_include_pad=False)
  np.testing.assert_allclose(same, 1.0)
  with pytest.raises(errors.InvalidPaddingError):
    pooling.max_pool(xb, (2,), padding="CIRCULAR")


def test_embed_lookup_and_attend():
  table = rand((5, 3), 0)
  ids = jnp.array([[0, 4], [2, 2]])
  np.testing.assert_allclose(embed.lookup(table, ids), table[ids])
  assert embed.lookup(table, ids, dtype=jnp.bfloat16).dtype == jnp.bfloat16
  np.testing.assert_allclose(embed.lookup(table[:1], ids), jnp.broadcast_to(table[0], (2, 2, 3)))
  q = rand((2, 3), 1)
  np.testing.assert_allclose(embed.attend(table, q), q @ table.T, rtol=1e-5, atol=1e-6)
  with pytest.raises(errors.InputShapeError, match="integer"):
    embed.lookup(table, jnp.array([0.0]))


def test_activations_are_the_usual_functions():
  x = jnp.linspace(-3, 3, 7)
  np.testing.assert_allclose(activations.relu(x), jnp.maximum(x, 0))
  np.testing.assert_allclose(activations.silu(x), x / (1 + jnp.exp(-x)), rtol=1e-5)
  np.testing.assert_allclose(activations.tanh(x), jnp.tanh(x))
  np.testing.assert_allclose(activations.softmax(x).sum(), 1.0, rtol=1e-6)
  assert activations.swish is activations.silu or np.allclose(activations.swish(x),
                                                              activations.silu(x))
