"""The ops' promote rules, preferred_element_type, einsum subscripts with '...' anywhere, the
REFLECT / CIRCULAR padding modes and prelu, each against a hand-written lax / jnp reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from flaxen import errors
from flaxen.ops import conv, dtypes, embed, linear, prelu


def rand(shape, seed=0, dtype=jnp.float32):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


def test_preferred_element_type_reaches_dot_general_and_einsum():
  x, w, b = rand((2, 3), 0, jnp.float16), rand((3, 4), 1, jnp.float16), rand((4,), 2, jnp.float16)
  ref = lax.dot_general(x, w, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32) + b
  y = linear.dense(x, w, b, preferred_element_type=jnp.float32)
  assert y.dtype == jnp.float32
  np.testing.assert_array_equal(y, ref)  # the same ops in the same order: bit-equal
  y = linear.dense_general(x, w, b, preferred_element_type=jnp.float32)
  np.testing.assert_array_equal(y, ref)
  y = linear.einsum("ab,bc->ac", x, w, b, preferred_element_type=jnp.float32)
  ref = jnp.einsum("ab,bc->ac", x, w, preferred_element_type=jnp.float32) + b
  assert y.dtype == jnp.float32
  np.testing.assert_array_equal(y, ref)


def test_optional_keywords_are_not_passed_to_custom_contractions():
  seen = []

  def dot(a, b, dims, precision=None):  # no preferred_element_type / out_sharding parameter
    seen.append(precision)
    return lax.dot_general(a, b, dims, precision=precision)

  linear.dense(jnp.ones((1, 2)), jnp.ones((2, 3)), dot_general=dot)
  assert seen == [None]
  assert linear.contraction_kwargs(jnp.float32, None) == {"preferred_element_type": jnp.float32}


def test_promote_rule_is_called_with_the_tuple_and_dtype():
  calls = []

  def rule(args, dtype=None, inexact=True):
    calls.append((len(args), dtype, inexact))
    return tuple(None if a is None else jnp.asarray(a, jnp.float16) for a in args)

  y = linear.dense(jnp.ones((1, 2)), jnp.ones((2, 3)), None, promote_rule=rule)
  assert y.dtype == jnp.float16 and calls == [(3, None, True)]
  table = jnp.arange(6.0).reshape(3, 2)
  rows = embed.lookup(table, jnp.array([2]), promote_rule=rule)
  assert calls[-1] == (1, None, False) and rows.dtype == jnp.float16
  vararg = dtypes.from_varargs(lambda *a, dtype=None: [x * 2 for x in a])
  assert vararg((jnp.ones(1),), dtype=None)[0].tolist() == [2.0]
  assert dtypes.from_varargs(dtypes.promote_dtype) is None


@pytest.mark.parametrize("subscripts, lhs, rhs", [
  ("abd,bc...->ac...", (3, 4, 6), (4, 5, 6)),
  ("a...d,ej...f->adef", (3, 4, 5, 6), (7, 4, 5, 8)),
  ("ab...d,ej...f->ad...f", (3, 4, 5, 6), (7, 4, 5, 8)),
  (" ab c , c d e - > a b d e ", (3, 4, 5), (5, 6, 7)),
])
def test_einsum_subscripts_with_ellipses_and_spaces(subscripts, lhs, rhs):
  x, w = rand(lhs, 0), rand(rhs, 1)
  shape = linear.einsum_bias_shape(subscripts, rhs)
  b = rand(shape, 2)
  y = linear.einsum(subscripts, x, w, b)
  ref = jnp.einsum(subscripts.replace(" ", ""), x, w)
  # The bias lines up with the output dims that come from the kernel, in output order.
  _, r, out = linear.parse_einsum(subscripts, lhs, rhs)
  ref = ref + b.reshape([rhs[r.index(c)] if c in r else 1 for c in out])
  np.testing.assert_allclose(y, ref, rtol=1e-6)  # identical ops; float32 round-off only


def test_einsum_bias_shape_examples():
  assert linear.einsum_bias_shape("abd,bc...->ac...", (4, 5, 6)) == (5, 6)
  assert linear.einsum_bias_shape("a...d,ej...f->adef", (7, 4, 5, 8)) == (7, 8)
  with pytest.raises(errors.EinsumSubscriptsError, match="->"):
    linear.einsum_bias_shape("ab,bc", (2, 3))


def _valid_conv(x, k, strides):
  dn = lax.conv_dimension_numbers(x.shape, k.shape, ("NWC", "WIO", "NWC"))
  return lax.conv_general_dilated(x, k, strides, "VALID", dimension_numbers=dn)


@pytest.mark.parametrize("mode, np_mode", [("REFLECT", "reflect"), ("CIRCULAR", "wrap")])
def test_padded_modes_pad_half_the_window_whatever_the_stride(mode, np_mode):
  x, k = rand((1, 5, 2), 0), rand((3, 2, 1), 1)
  padded = jnp.pad(x, [(0, 0), (1, 1), (0, 0)], mode=np_mode)
  np.testing.assert_allclose(conv.conv(x, k, strides=3, padding=mode),
                             _valid_conv(padded, k, (3,)), rtol=1e-6)
  # An even kernel puts the extra element on the right.
  k4 = rand((4, 2, 1), 2)
  padded = jnp.pad(x, [(0, 0), (1, 2), (0, 0)], mode=np_mode)
  np.testing.assert_allclose(conv.conv(x, k4, padding=mode), _valid_conv(padded, k4, (1,)),
                             rtol=1e-6)


def test_circular_conv_by_hand():
  # x = 1..5, kernel (1, 2, 1), stride 3: windows (5, 1, 2) and (3, 4, 5) of the wrapped input.
  x = jnp.arange(1.0, 6.0).reshape(1, 5, 1)
  k = jnp.array([1.0, 2.0, 1.0]).reshape(3, 1, 1)
  assert conv.conv(x, k, strides=3, padding="CIRCULAR").ravel().tolist() == [9.0, 16.0]


def test_conv_preferred_element_type_and_transpose():
  x, k = rand((1, 6, 2), 0, jnp.float16), rand((3, 2, 4), 1, jnp.float16)
  y = conv.conv(x, k, padding="VALID", preferred_element_type=jnp.float32)
  dn = lax.conv_dimension_numbers(x.shape, k.shape, ("NWC", "WIO", "NWC"))
  ref = lax.conv_general_dilated(x, k, (1,), "VALID", dimension_numbers=dn,
                                 preferred_element_type=jnp.float32)
  assert y.dtype == jnp.float32
  np.testing.assert_array_equal(y, ref)
  y = conv.conv_transpose(x, k, padding="VALID", preferred_element_type=jnp.float32)
  ref = lax.conv_transpose(x, k, (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"),
                           preferred_element_type=jnp.float32)
  assert y.dtype == jnp.float32
  np.testing.assert_array_equal(y, ref)
  with pytest.raises(errors.InvalidPaddingError, match="REFLECT"):
    conv.conv_transpose(x, k, padding="REFLECT")


def test_prelu_reference_and_dtypes():
  x = jnp.array([-2.0, 0.0, 3.0], jnp.bfloat16)
  y = prelu.prelu(x, jnp.array(0.25))
  assert y.dtype == jnp.bfloat16 and y.tolist() == [-0.5, 0.0, 3.0]
  assert prelu.prelu(x, jnp.array(0.25), dtype=jnp.float32).dtype == jnp.float32
  g = jax.grad(lambda s: prelu.prelu(jnp.array([-2.0, 3.0]), s).sum())(jnp.array(0.1))
  assert float(g) == -2.0  # d/ds of s * x over the negative entries
