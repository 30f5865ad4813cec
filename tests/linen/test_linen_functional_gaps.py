"""nn.init / nn.init_with_output with a function of the bound module, and nn.share_scope."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors


class Affine(nn.Module):
  @nn.compact
  def __call__(self, x):
    return x * self.param("a", nn.initializers.constant(2.0), ()) + 1.0

  def twice(self, x):
    return self(self(x))


def test_init_and_init_with_output_run_a_function_of_the_module():
  key = jax.random.key(0)
  y, variables = nn.init_with_output(lambda m, x: m.twice(x), Affine())(key, 3.0)
  assert float(y) == (3.0 * 2 + 1) * 2 + 1
  assert float(variables["params"]["a"]) == 2.0
  assert nn.init(lambda m, x: m.twice(x), Affine())(key, 3.0) == variables
  doubled = {"params": {"a": jnp.asarray(3.0)}}
  np.testing.assert_allclose(nn.apply(lambda m, x: m.twice(x), Affine())(doubled, 1.0),
                             (1.0 * 3 + 1) * 3 + 1)


class Wrapper(nn.Module):
  def setup(self):
    self.inner = nn.Dense(2)
    nn.share_scope(self, self.inner)

  def __call__(self, x):
    return self.inner(x)


def test_share_scope_puts_the_child_variables_at_the_parent_level():
  variables = Wrapper().init(jax.random.key(0), jnp.ones((1, 3)))
  assert set(variables["params"]) == {"kernel", "bias"}  # no "inner" level
  dense = nn.Dense(2).init(jax.random.key(0), jnp.ones((1, 3)))
  x = jnp.arange(3.0)[None]
  np.testing.assert_allclose(Wrapper().apply(variables, x), nn.Dense(2).apply(variables, x))
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, dense)


class LoRA(nn.Module):
  base: nn.Module

  def setup(self):
    nn.share_scope(self, self.base)

  @nn.compact
  def __call__(self, x):
    a = self.param("A", nn.initializers.ones, (x.shape[-1], 1))
    return self.base(x) + x @ a


def test_share_scope_with_a_module_built_outside_moves_into_its_scope():
  class Model(nn.Module):
    @nn.compact
    def __call__(self, x):
      return LoRA(nn.Dense(2))(x)  # the Dense is Model's child, not LoRA's

  x = jnp.arange(3.0)[None]
  params = Model().init(jax.random.key(0), x)["params"]
  assert list(params) == ["Dense_0"]  # LoRA's own param joined the Dense's scope
  assert set(params["Dense_0"]) == {"A", "bias", "kernel"}
  p = params["Dense_0"]
  np.testing.assert_allclose(Model().apply({"params": params}, x),
                             x @ p["kernel"] + p["bias"] + x @ p["A"], rtol=1e-6)


def test_share_scope_of_unbound_modules_raises():
  with pytest.raises(errors.CallShareScopeOnUnboundModuleError, match="share_scope"):
    nn.share_scope(Affine(), nn.Dense(2))  # Flax's error for an unbound first module
