"""Lifted transforms rebuild the bound Modules held in the target's fields (and theirs)."""

import jax
import jax.numpy as jnp
import numpy as np

import flaxen.linen as nn


class Apply(nn.Module):
  inner: nn.Module

  @nn.compact
  def __call__(self, x):
    return self.inner(x)


def test_shared_field_module_under_jit_matches_plain_call():
  class Outer(nn.Module):
    @nn.compact
    def __call__(self, x):
      dense = nn.Dense(2, name="shared")
      return nn.jit(Apply)(dense)(x) + dense(x)

  x = jnp.arange(6.0).reshape(3, 2)
  variables = Outer().init(jax.random.key(0), x)
  assert set(variables["params"]) == {"shared"}  # one Dense, owned by Outer
  p = variables["params"]["shared"]
  ref = 2 * (x @ p["kernel"] + p["bias"])  # the same Dense twice, by hand
  np.testing.assert_allclose(Outer().apply(variables, x), ref, rtol=1e-6)  # fp32 matmul


def test_nested_field_modules_under_vmap_get_the_mapped_axis():
  class Chain(nn.Module):
    inner: nn.Module

    @nn.compact
    def __call__(self, x):
      vmapped = nn.vmap(Apply, variable_axes={"params": 0}, split_rngs={"params": True})
      return vmapped(self.inner)(x)

  class Top(nn.Module):
    @nn.compact
    def __call__(self, x):
      dense = nn.Dense(3)
      return Chain(Apply(dense))(x)

  x = jnp.ones((4, 5))
  variables = Top().init(jax.random.key(1), x)
  kernel = variables["params"]["Dense_0"]["kernel"]
  assert kernel.shape == (4, 5, 3)  # created inside vmap: one kernel per row
  bias = variables["params"]["Dense_0"]["bias"]
  ref = jnp.einsum("bi,bio->bo", x, kernel) + bias
  np.testing.assert_allclose(Top().apply(variables, x), ref, rtol=1e-6)


def test_mutation_through_a_field_module_is_written_back():
  class Counter(nn.Module):
    @nn.compact
    def __call__(self):
      c = self.variable("counter", "n", lambda: jnp.zeros((), jnp.int32))
      c.value += 1
      return c.value

  class Use(nn.Module):
    counter: nn.Module

    @nn.compact
    def __call__(self):
      return self.counter()

  class Top(nn.Module):
    @nn.compact
    def __call__(self):
      counter = Counter()
      nn.jit(Use)(counter)()
      return nn.jit(Use)(counter)()

  variables = Top().init(jax.random.key(0))
  assert int(variables["counter"]["Counter_0"]["n"]) == 2
  _, state = Top().apply(variables, mutable="counter")
  assert int(state["counter"]["Counter_0"]["n"]) == 4


def test_variable_passed_to_a_transformed_method_is_lifted():
  class Acc(nn.Module):
    @nn.compact
    def __call__(self, x):
      total = self.variable("state", "total", jnp.zeros, x.shape)
      return self.add(x, total)

    @nn.jit
    def add(self, x, total):
      total.value = total.value + 2 * x
      return total.value

  x = jnp.arange(3.0)
  variables = Acc().init(jax.random.key(0), x)
  np.testing.assert_allclose(variables["state"]["total"], 2 * x)
  y, state = Acc().apply(variables, x, mutable="state")
  np.testing.assert_allclose(y, 4 * x)
  np.testing.assert_allclose(state["state"]["total"], 4 * x)


def test_partial_of_a_module_class_and_unbound_transformed_methods():
  import functools

  dense = functools.partial(nn.Dense, use_bias=False)
  stacked = nn.vmap(dense, variable_axes={"params": 0}, split_rngs={"params": True})(4)
  x = jnp.ones((3, 2))
  variables = stacked.init(jax.random.key(0), x)
  kernel = variables["params"]["kernel"]
  assert kernel.shape == (3, 2, 4) and "bias" not in variables["params"]
  np.testing.assert_allclose(stacked.apply(variables, x), jnp.einsum("bi,bio->bo", x, kernel),
                             rtol=1e-6)  # fp32 matmul

  class Foo(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(2)(x)

    @nn.jit
    def init_with_output(self, rngs, *args, **kwargs):  # called on the unbound module
      return super().init_with_output(rngs, *args, **kwargs)

  y, variables = Foo().init_with_output(jax.random.key(0), x)
  p = variables["params"]["Dense_0"]
  np.testing.assert_allclose(y, x @ p["kernel"] + p["bias"], rtol=1e-6)


def test_variable_held_in_a_field_is_rebuilt_inside_jit():
  # a Variable given to a submodule's constructor, updated under nested nn.jit
  class Adder(nn.Module):
    var: nn.Variable

    @nn.jit
    @nn.compact
    def __call__(self, x):
      self.var.value += x
      return 2 * x

  class Owner(nn.Module):
    @nn.jit
    @nn.compact
    def __call__(self, x):
      total = self.variable("stats", "total", jnp.zeros, x.shape)
      return Adder(total)(x)

  x = jnp.array([1.0, 2.0])
  y, variables = Owner().init_with_output(jax.random.key(0), x)
  np.testing.assert_array_equal(y, 2 * x)
  np.testing.assert_array_equal(variables["stats"]["total"], x)
  _, updated = Owner().apply(variables, x, mutable=["stats"])
  np.testing.assert_array_equal(updated["stats"]["total"], 2 * x)
