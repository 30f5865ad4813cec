"""A module object used in several places of one model is one module with one set of
variables; unbind gives back the module as built; dir() lists what setup defines."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import flaxen.linen as nn

KEY = jax.random.key(0)
dense = functools.partial(nn.Dense, use_bias=False)


class Inner(nn.Module):
  @nn.compact
  def __call__(self, x):
    return dense(2)(x)


class Middle(nn.Module):
  a: nn.Module

  @nn.compact
  def __call__(self, x):
    return dense(2)(x) + self.a(x)


class Outer(nn.Module):
  a: nn.Module
  b: nn.Module

  @nn.compact
  def __call__(self, x):
    return dense(2)(x) + self.b(x) + self.a(x)


def test_a_module_held_in_two_fields_is_adopted_once():
  a = Inner()
  model = Outer(a, Middle(a))
  x = jnp.arange(4.0).reshape(2, 2)
  params = model.init(KEY, x)["params"]
  assert jax.tree.map(jnp.shape, params) == {
    "Dense_0": {"kernel": (2, 2)}, "a": {"Dense_0": {"kernel": (2, 2)}},
    "b": {"Dense_0": {"kernel": (2, 2)}},
  }
  k = lambda *path: functools.reduce(lambda d, p: d[p], path, params)["kernel"]
  shared = x @ k("a", "Dense_0")
  expected = x @ k("Dense_0") + (x @ k("b", "Dense_0") + shared) + shared
  np.testing.assert_allclose(model.apply({"params": params}, x), expected, rtol=1e-6)


class Counted(nn.Module):
  @nn.compact
  def __call__(self, x):
    count = self.variable("counter", "i", jnp.zeros, ())
    count.value += 1
    return nn.Dense(1)(x)


class ByKey(nn.Module):
  layers: dict

  @nn.compact
  def __call__(self, x):
    return sum(self.layers[k](x) for k in ("foo", "bar", "baz"))


def test_a_module_shared_by_dict_keys_is_named_by_the_first_key_in_order():
  c = Counted()
  model = ByKey({"foo": c, "bar": c, "baz": c})
  x = jnp.ones((2, 2))
  variables = model.init(KEY, x)
  assert list(variables["params"]) == ["layers_bar"]
  _, state = model.apply(variables, x, mutable="counter")
  assert float(state["counter"]["layers_bar"]["i"]) == 6.0  # 3 calls in init, 3 in apply


def test_unbind_returns_the_module_as_built():
  class Wrap(nn.Module):
    sub: nn.Module

    @nn.compact
    def __call__(self, x):
      return self.sub(nn.Dense(2)(x))

  model = Wrap(Wrap(nn.Dense(3)))
  x = jnp.ones((1, 2))
  variables = model.init(KEY, x)
  bound = model.bind(variables)
  np.testing.assert_array_equal(bound(x), model.apply(variables, x))
  unbound, got = bound.unbind()
  assert unbound == model and unbound.sub.name is None and unbound.sub.sub.name is None
  assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), got, variables))


def test_dir_of_a_bound_module_runs_setup():
  class WithSetup(nn.Module):
    def setup(self):
      self.d = nn.Dense(2)

    def __call__(self, x):
      return self.d(x)

  class Parent(nn.Module):
    def setup(self):
      self.child = WithSetup()

    def __call__(self, x):
      assert "d" in dir(self.child)
      return self.child(x)

  y, _ = Parent().init_with_output(KEY, jnp.ones((1, 3)))
  assert y.shape == (1, 2)
