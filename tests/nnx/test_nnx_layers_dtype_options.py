"""NNX layers' promote_dtype, preferred_element_type and out_sharding, PReLU, and GraphDefs
that do not depend on the initializers; outputs against hand-written lax / jnp references."""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from flaxen import nnx

X16 = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3)), jnp.float16)


def test_linear_preferred_element_type_matches_lax():
  layer = nnx.Linear(3, 4, param_dtype=jnp.float16, preferred_element_type=jnp.float32,
                     rngs=nnx.Rngs(0))
  k, b = layer.kernel.value, layer.bias.value
  ref = lax.dot_general(X16, k, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  y = layer(X16)
  assert y.dtype == jnp.float32
  np.testing.assert_array_equal(y, ref + b)  # same ops in the same order


def test_linear_general_dot_general_cls_and_preferred_type():
  made = []

  class Dot:
    def __init__(self):
      made.append(self)

    def __call__(self, *args, **kwargs):
      return lax.dot_general(*args, **kwargs)

  layer = nnx.LinearGeneral(3, 4, dot_general_cls=Dot, preferred_element_type=jnp.float32,
                            param_dtype=jnp.float16, rngs=nnx.Rngs(0))
  y = layer(X16)
  assert len(made) == 1 and y.dtype == jnp.float32
  ref = lax.dot_general(X16, layer.kernel.value, (((1,), (0,)), ((), ())),
                        preferred_element_type=jnp.float32) + layer.bias.value
  np.testing.assert_array_equal(y, ref)


def test_einsum_preferred_type_ellipsis_and_int_bias_shape():
  layer = nnx.Einsum("...k,kj->...j", (3, 5), 5, param_dtype=jnp.float16,
                     preferred_element_type=jnp.float32, rngs=nnx.Rngs(0))
  assert layer.bias.value.shape == (5,)
  y = layer(X16)
  ref = jnp.einsum("...k,kj->...j", X16, layer.kernel.value,
                   preferred_element_type=jnp.float32) + layer.bias.value
  assert y.dtype == jnp.float32
  np.testing.assert_array_equal(y, ref)


def test_promote_dtype_rule_is_used():
  calls = []

  def to_half(args, dtype=None, inexact=True):
    calls.append(len(args))
    return tuple(None if a is None else jnp.asarray(a, jnp.bfloat16) for a in args)

  for layer in (nnx.Linear(3, 2, promote_dtype=to_half, rngs=nnx.Rngs(0)),
                nnx.Conv(3, 2, 1, promote_dtype=to_half, rngs=nnx.Rngs(0))):
    assert layer(jnp.ones((1, 3))).dtype == jnp.bfloat16
  embed = nnx.Embed(4, 2, promote_dtype=to_half, rngs=nnx.Rngs(0))
  assert embed(jnp.array([1])).dtype == jnp.bfloat16
  assert calls == [3, 3, 1]


def test_conv_padding_modes_and_preferred_type():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 5, 2)), jnp.float16)
  layer = nnx.Conv(2, 3, 3, padding="REFLECT", param_dtype=jnp.float16,
                   preferred_element_type=jnp.float32, rngs=nnx.Rngs(0))
  padded = jnp.pad(x, [(0, 0), (1, 1), (0, 0)], mode="reflect")
  dn = lax.conv_dimension_numbers(padded.shape, layer.kernel.value.shape, ("NWC", "WIO", "NWC"))
  ref = lax.conv_general_dilated(padded, layer.kernel.value, (1,), "VALID",
                                 dimension_numbers=dn, preferred_element_type=jnp.float32)
  y = layer(x)
  assert y.dtype == jnp.float32
  np.testing.assert_array_equal(y, ref + layer.bias.value)


def test_out_sharding_under_an_explicit_mesh():
  mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))
  layer = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
  with jax.set_mesh(mesh):
    y = layer(jnp.ones((2, 3)), out_sharding=jax.P("x", None))
  np.testing.assert_allclose(y, jnp.ones((2, 3)) @ layer.kernel.value + layer.bias.value,
                             rtol=1e-6)
  assert y.sharding.spec == jax.P("x", None)


def test_prelu_matches_reference_and_gradient():
  act = nnx.PReLU(0.2)
  x = jnp.array([-1.0, 2.0])
  assert act(x).tolist() == [np.float32(-0.2), 2.0]
  grads = nnx.grad(lambda m: m(x).sum())(act)
  assert float(grads.negative_slope.value) == -1.0  # d/ds of s * x at x = -1


def test_graphdef_does_not_depend_on_initializers():
  zeros, ones = nnx.initializers.zeros, nnx.initializers.ones
  for make in (lambda i: nnx.Linear(2, 3, kernel_init=i, bias_init=i, rngs=nnx.Rngs(0)),
               lambda i: nnx.Embed(2, 3, embedding_init=i, rngs=nnx.Rngs(0)),
               lambda i: nnx.LayerNorm(3, scale_init=i, bias_init=i, rngs=nnx.Rngs(0))):
    assert nnx.graphdef(make(zeros)) == nnx.graphdef(make(ones))
