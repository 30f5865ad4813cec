"""Linen layers' promote_dtype / preferred_element_type, Einsum subscripts with '...', int
kernel sizes, REFLECT padding, and the default Dense program (no extra ops)."""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import flaxen.linen as nn

KEY = jax.random.key(0)
X16 = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3)), jnp.float16)


def test_einsum_preferred_element_type_and_ellipsis_kernel():
  layer = nn.Einsum((3, 5), "bk,k...->b...", param_dtype=jnp.float16,
                    preferred_element_type=jnp.float32)
  v = layer.init(KEY, X16)
  k, b = v["params"]["kernel"], v["params"]["bias"]
  assert b.shape == (5,)
  y = layer.apply(v, X16)
  ref = jnp.einsum("bk,k...->b...", X16, k, preferred_element_type=jnp.float32) + b
  assert y.dtype == jnp.float32
  np.testing.assert_array_equal(y, ref)


def test_conv_transpose_preferred_element_type():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 4, 2)), jnp.float16)
  layer = nn.ConvTranspose(3, (3,), padding="VALID", param_dtype=jnp.float16,
                           preferred_element_type=jnp.float32)
  v = layer.init(KEY, x)
  ref = lax.conv_transpose(x, v["params"]["kernel"], (1,), "VALID",
                           dimension_numbers=("NWC", "WIO", "NWC"),
                           preferred_element_type=jnp.float32) + v["params"]["bias"]
  y = layer.apply(v, x)
  assert y.dtype == jnp.float32
  np.testing.assert_array_equal(y, ref)


def test_promote_dtype_is_called_with_varargs():
  calls = []

  def to_half(*args, dtype=None, inexact=True):
    calls.append(len(args))
    return [None if a is None else jnp.asarray(a, jnp.bfloat16) for a in args]

  for layer in (nn.Dense(2, promote_dtype=to_half), nn.DenseGeneral(2, promote_dtype=to_half),
                nn.Conv(2, 1, promote_dtype=to_half)):
    y, _ = layer.init_with_output(KEY, jnp.ones((1, 3)))
    assert y.dtype == jnp.bfloat16
  y, _ = nn.Embed(4, 2, promote_dtype=to_half).init_with_output(KEY, jnp.array([1]))
  assert y.dtype == jnp.bfloat16 and calls == [3, 3, 3, 1]


def test_int_kernel_size_and_reflect_padding():
  x = jnp.asarray(np.random.default_rng(2).normal(size=(1, 5, 2)), jnp.float32)
  layer = nn.Conv(1, 3, padding="REFLECT", use_bias=False)
  v = layer.init(KEY, x)
  k = v["params"]["kernel"]
  assert k.shape == (3, 2, 1)
  padded = jnp.pad(x, [(0, 0), (1, 1), (0, 0)], mode="reflect")
  dn = lax.conv_dimension_numbers(padded.shape, k.shape, ("NWC", "WIO", "NWC"))
  ref = lax.conv_general_dilated(padded, k, (1,), "VALID", dimension_numbers=dn)
  np.testing.assert_allclose(layer.apply(v, x), ref, rtol=1e-6)  # identical ops


def test_default_dense_program_is_dot_reshape_add():
  layer = nn.Dense(4)
  v = layer.init(KEY, jnp.ones((2, 3)))
  jaxpr = jax.make_jaxpr(lambda v, x: layer.apply(v, x))(v, jnp.ones((2, 3)))
  assert _primitives(jaxpr.jaxpr) == ["dot_general", "reshape", "add"]


def _primitives(jaxpr):
  out = []
  for eqn in jaxpr.eqns:
    inner = eqn.params.get("jaxpr")
    if inner is not None:  # an inlined jit kernel
      out += _primitives(getattr(inner, "jaxpr", inner))
    else:
      out.append(eqn.primitive.name)
  return out
