"""nnx.prefix in tree mode: a copy shaped like the Module whose Variables hold the prefixes,
usable by nnx transforms and by plain jax.vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx


class Block(nnx.Module):
  def __init__(self, rngs):
    self.linear = nnx.Linear(2, 3, rngs=rngs)
    self.bn = nnx.BatchNorm(3, rngs=rngs)


def test_tree_mode_prefix_is_a_module_copy_holding_the_prefixes():
  m = Block(nnx.Rngs(0))
  axes = nnx.prefix(m, {nnx.Param: "p", nnx.BatchStat: "b"}, graph=False)
  assert type(axes) is Block and axes is not m
  assert type(axes.linear.kernel) is nnx.Param and axes.linear.kernel.value == "p"
  assert axes.bn.mean.value == "b" and axes.bn.scale.value == "p"
  # the model is untouched
  assert m.linear.kernel.value.shape == (2, 3)
  by_fn = nnx.prefix(m, lambda path, v: path[-1], graph=False)
  assert by_fn.linear.bias.value == "bias" and by_fn.bn.var.value == "var"
  v_axes = nnx.prefix(m.linear.kernel, {nnx.Param: 0}, graph=False)
  assert isinstance(v_axes, nnx.Param) and v_axes.value == 0
  with pytest.raises(errors.UnmatchedFilterError):
    nnx.prefix(m, {nnx.Param: 0}, graph=False)


def _stacked_linear():
  m = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  m.kernel.value = jax.random.normal(jax.random.key(1), (4, 2, 3))
  return m


def test_tree_mode_prefix_as_plain_jax_vmap_in_axes():
  m = _stacked_linear()
  axes = nnx.prefix(m, {nnx.PathContains("kernel"): 0, ...: None}, graph=False)
  x = jnp.ones((2,))
  y = jax.vmap(lambda m, x: x @ m.kernel.value + m.bias.value, in_axes=(axes, None))(m, x)
  ref = jnp.einsum("i,bij->bj", x, m.kernel.value) + m.bias.value  # exact: same products
  np.testing.assert_allclose(y, ref, rtol=1e-6)


@pytest.mark.parametrize("graph", [True, False])
def test_prefix_as_nnx_vmap_in_axes(graph):
  m = _stacked_linear()
  axes = nnx.prefix(m, {nnx.PathContains("kernel"): 0, ...: None}, graph=graph)
  x = jnp.ones((2,))
  y = nnx.vmap(lambda m, x: m(x), in_axes=(axes, None), graph=graph, graph_updates=False)(m, x)
  ref = jnp.einsum("i,bij->bj", x, m.kernel.value) + m.bias.value
  np.testing.assert_allclose(y, ref, rtol=1e-6)  # float32 rounding of one dot product


def test_tree_mode_prefix_of_a_variable_in_nnx_vmap():
  v = nnx.Param(jnp.arange(6.0).reshape(3, 2))
  axes = nnx.prefix(v, {nnx.Param: 0}, graph=False)
  y = nnx.vmap(lambda v, x: v.value * x, in_axes=(axes, None), graph=False,
               graph_updates=False)(v, 2.0)
  np.testing.assert_array_equal(y, 2.0 * v.value)
