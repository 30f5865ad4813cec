from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

from flaxen import errors
from flaxen.ops.conv import canonicalize_padding, conv, conv_transpose

K = jax.random.split(jax.random.key(1), 4)


def rand(shape, seed=0):
  """Standard-normal test data from NumPy (jax.random compiles once per shape: slow)."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@partial(jax.jit, static_argnums=(2, 3, 4))
def ref_conv1d(x, w, stride=1, pad=(0, 0), dilation=1):
  """Loop reference for a batched 1-d cross-correlation, channels last."""
  x = jnp.pad(x, [(0, 0), pad, (0, 0)])
  span = (w.shape[0] - 1) * dilation + 1
  outs = []
  for start in range(0, x.shape[1] - span + 1, stride):
    window = x[:, start:start + span:dilation]  # (B, K, C)
    outs.append(jnp.einsum("bkc,kco->bo", window, w))
  return jnp.stack(outs, axis=1)


def test_canonicalize_padding():
  assert canonicalize_padding("same", 2) == "SAME"
  assert canonicalize_padding(2, 2) == [(2, 2), (2, 2)]
  assert canonicalize_padding([1, (0, 2)], 2) == [(1, 1), (0, 2)]
  for bad in ("NOPE", [1, 2, 3], [(1, 2, 3), 1]):
    with pytest.raises(errors.InvalidPaddingError):
      canonicalize_padding(bad, 2)


@pytest.mark.parametrize("stride,dilation,padding,pad", [
  (1, 1, "VALID", (0, 0)), (2, 1, 1, (1, 1)), (1, 2, "SAME", (2, 2)), (1, 1, "CAUSAL", (2, 0)),
  (1, 1, [(2, 1)], (2, 1)),
])
def test_conv1d_against_loop(stride, dilation, padding, pad):
  x = rand((2, 7, 3), 0)
  w = rand((3, 3, 4), 1)
  b = rand((4,), 2)
  y = conv(x, w, b, strides=stride, padding=padding, kernel_dilation=dilation)
  ref = ref_conv1d(x, w, stride, pad, dilation) + b
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_circular_padding_wraps():
  x = rand((1, 6, 2), 0)
  w = rand((3, 2, 2), 1)
  wrapped = jnp.concatenate([x[:, -1:], x, x[:, :1]], axis=1)
  np.testing.assert_allclose(conv(x, w, padding="CIRCULAR"), ref_conv1d(wrapped, w),
                             rtol=1e-4, atol=1e-4)


def test_conv2d_groups_unbatched_and_extra_batch_dims():
  x = rand((2, 3, 5, 5, 4), 0)
  w = rand((3, 3, 2, 6), 1)
  y = conv(x, w, feature_group_count=2, strides=(2, 1), padding="SAME")
  dn = ("NHWC", "HWIO", "NHWC")
  ref = lax.conv_general_dilated(x.reshape(6, 5, 5, 4), w, (2, 1), ((1, 1), (1, 1)),
                                 dimension_numbers=dn, feature_group_count=2)
  np.testing.assert_allclose(y, ref.reshape(2, 3, 3, 5, 6), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(conv(x[0, 0], w, feature_group_count=2, strides=(2, 1)),
                             ref[0], rtol=1e-4, atol=1e-4)


def test_conv3d_input_dilation():
  x = rand((1, 3, 3, 3, 1), 0)
  w = rand((2, 2, 2, 1, 1), 1)
  y = conv(x, w, padding="VALID", input_dilation=2)
  dn = ("NDHWC", "DHWIO", "NDHWC")
  ref = lax.conv_general_dilated(x, w, (1, 1, 1), ((0, 0),) * 3, lhs_dilation=(2, 2, 2),
                                 dimension_numbers=dn)
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
  same = conv(x, w, padding="SAME", input_dilation=2)
  ref = lax.conv_general_dilated(x, w, (1, 1, 1), ((0, 1),) * 3, lhs_dilation=(2, 2, 2),
                                 dimension_numbers=dn)
  np.testing.assert_allclose(same, ref, rtol=1e-4, atol=1e-4)


def test_conv_errors():
  with pytest.raises(errors.FeatureSizeError, match="3 input.*has 4"):
    conv(jnp.ones((1, 5, 4)), jnp.ones((3, 3, 2)))
  with pytest.raises(errors.FeatureGroupError):
    conv(jnp.ones((1, 5, 3)), jnp.ones((3, 1, 2)), feature_group_count=2)
  with pytest.raises(errors.InputShapeError):
    conv(jnp.ones((5,)), jnp.ones((3, 3, 1, 2)))
  with pytest.raises(errors.InvalidPaddingError):
    conv(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), padding="CAUSAL")


@partial(jax.jit, static_argnums=(2, 3))
def ref_conv_transpose1d(x, w, stride, transpose_kernel):
  """Scatter reference: every input position adds a kernel-shaped patch to the output."""
  size = (x.shape[1] - 1) * stride + w.shape[0]
  y = jnp.zeros((x.shape[0], size, w.shape[1] if transpose_kernel else w.shape[2]))
  for i in range(x.shape[1]):
    for k in range(w.shape[0]):
      if transpose_kernel:
        y = y.at[:, i * stride + k].add(x[:, i] @ w[k].T)
      else:
        y = y.at[:, i * stride + w.shape[0] - 1 - k].add(x[:, i] @ w[k])
  return y


@pytest.mark.parametrize("transpose_kernel", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_transpose_valid_against_scatter(stride, transpose_kernel):
  x = rand((2, 4, 3), 0)
  w = rand((3, 3, 3), 1)
  b = rand((3,), 2)
  y = conv_transpose(x, w, b, strides=stride, padding="VALID", transpose_kernel=transpose_kernel)
  ref = ref_conv_transpose1d(x, w, stride, transpose_kernel) + b
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_circular_conv_transpose_is_adjoint_of_circular_conv():
  stride = 1
  # <conv(x), y> == <x, conv_transpose(y)> with the same kernel and transpose_kernel=True.
  x = rand((1, 8, 2), 0)
  w = rand((3, 2, 3), 1)
  y = rand((1, 8 // stride, 3), 2)
  lhs = jnp.vdot(conv(x, w, strides=stride, padding="CIRCULAR"), y)
  rhs = jnp.vdot(x, conv_transpose(y, w, strides=stride, padding="CIRCULAR",
                                   transpose_kernel=True))
  np.testing.assert_allclose(lhs, rhs, rtol=1e-4)
  assert conv_transpose(y, w, strides=stride, padding="CIRCULAR", transpose_kernel=True).shape \
    == x.shape


def test_conv_transpose_circular_folds_full_output():
  x = rand((1, 4, 1), 0)
  w = rand((3, 1, 1), 1)
  full = conv_transpose(x, w, padding="VALID")[0, :, 0]  # length 6, period 4
  y = conv_transpose(x, w, padding="CIRCULAR")[0, :, 0]
  assert y.shape == (4,)
  np.testing.assert_allclose(jnp.sum(y), jnp.sum(full), rtol=1e-5)


def test_conv_local_against_per_position_kernels():
  from flaxen.ops.conv import conv_local, conv_local_kernel_shape

  x = rand((2, 5, 3), 0)
  shape = conv_local_kernel_shape(x.shape, (2,), 4, strides=2, padding="SAME")
  assert shape == (3, 6, 4)
  w = rand(shape, 1)
  b = rand((3, 4), 2)
  y = conv_local(x, w, b, kernel_size=(2,), strides=2, padding="SAME")
  xp = jnp.pad(x, [(0, 0), (0, 1), (0, 0)])  # SAME for 5 -> 3 with window 2, stride 2
  ref = []
  for o in range(3):
    patch = xp[:, 2 * o:2 * o + 2]  # (B, window, C); kernel rows run over C outer, window inner
    flat = jnp.transpose(patch, (0, 2, 1)).reshape(2, 6)
    ref.append(flat @ w[o] + b[o])
  np.testing.assert_allclose(y, jnp.stack(ref, 1), rtol=1e-4, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.data())
def test_canonicalize_padding_pairs_property(rank, data):
  entry = st.one_of(st.integers(0, 4), st.tuples(st.integers(0, 4), st.integers(0, 4)))
  padding = data.draw(st.lists(entry, min_size=rank, max_size=rank))
  pairs = canonicalize_padding(padding, rank)
  assert len(pairs) == rank
  for given_, pair in zip(padding, pairs, strict=True):
    assert pair == ((given_, given_) if isinstance(given_, int) else tuple(given_))


@settings(max_examples=5, deadline=None)
@given(st.integers(4, 7), st.integers(1, 3), st.integers(1, 2), st.integers(1, 2))
def test_same_padding_keeps_ceil_size(length, ksize, stride, dilation):
  x = jnp.ones((1, length, 1))
  y = conv(x, jnp.ones((ksize, 1, 1)), strides=stride, kernel_dilation=dilation, padding="SAME")
  assert y.shape[1] == -(-length // stride)
