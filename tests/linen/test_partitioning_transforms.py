"""partitioning.scan_with_axes / vmap_with_axes: the stacked axis is named in the metadata."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

import flaxen.linen as nn
from flaxen.linen import partitioning as nnp


class Layer(nn.Module):
  @nn.compact
  def __call__(self, x):
    w = nnp.param_with_axes("w", nn.initializers.normal(), (x.shape[-1], x.shape[-1]),
                            axes=("in", "out"))
    return jnp.tanh(x @ w), None


def test_scan_with_axes_names_the_layer_axis_and_matches_a_loop():
  class Stack(nn.Module):
    @nn.compact
    def __call__(self, x):
      scanned = nnp.scan_with_axes(Layer, variable_axes={"params": 0},
                                   split_rngs={"params": True}, in_axes=(), length=3,
                                   axis_name="layer")
      return scanned(name="layers")(x)[0]

  x = jnp.ones((2, 4))
  with nnp.axis_rules((("in", None), ("out", None), ("layer", None))):
    variables = Stack().init(jax.random.key(0), x)
    y = Stack().apply(variables, x)
  w = variables["params"]["layers"]["w"]
  assert w.shape == (3, 4, 4)
  assert nnp.get_axis_names(variables["params_axes"]) == {
    "layers": {"w": P("layer", "in", "out")}}
  ref = x
  for i in range(3):  # the scan by hand
    ref = jnp.tanh(ref @ w[i])
  np.testing.assert_allclose(y, ref, rtol=1e-5)  # fp32 matmuls


def test_vmap_with_axes_names_the_mapped_axis():
  class Mapped(nn.Module):
    @nn.compact
    def __call__(self, x):
      v = nnp.vmap_with_axes(Layer, variable_axes={"params": 1}, split_rngs={"params": True},
                             partitioning_axis_names={"params": "batch"})
      return v(name="v")(x)[0]

  x = jnp.ones((5, 4))
  with nnp.axis_rules(()):
    variables = Mapped().init(jax.random.key(0), x)
  assert variables["params"]["v"]["w"].shape == (4, 5, 4)
  assert variables["params_axes"]["v"]["w_axes"].names == ("in", "batch", "out")
