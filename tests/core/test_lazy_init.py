"""flaxen.core.lazy_init and Module.lazy_init: variables from input shapes only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import core, errors
from flaxen.core import lazy


def test_partial_evaluate_matches_the_eager_function():
  def f(key, x, scale):
    w = jax.random.normal(key, (x.shape[-1], 3)) * scale
    return {"w": w, "n": x.shape[0]}

  key = jax.random.key(4)
  abstract = jax.ShapeDtypeStruct((5, 2), jnp.float32)
  out = lazy.partial_evaluate(f)(key, abstract, np.float32(2.0))
  ref = f(key, jnp.zeros((5, 2)), np.float32(2.0))
  np.testing.assert_array_equal(out["w"], ref["w"])
  assert out["n"] == 5
  with pytest.raises(errors.LazyInitError):
    lazy.partial_evaluate(lambda x: {"m": x.sum()})(jax.ShapeDtypeStruct((3,), jnp.float32))


def test_core_lazy_init_is_a_lazy_core_init():
  def dense(scope, x):
    w = scope.param("w", jax.nn.initializers.lecun_normal(), (x.shape[-1], 2))
    return x @ w

  key = jax.random.key(2)
  lazy_vars = core.lazy_init(dense)(key, jax.ShapeDtypeStruct((4, 3), jnp.float32))
  _, eager_vars = core.init(dense)(key, jnp.ones((4, 3)))
  np.testing.assert_array_equal(lazy_vars["params"]["w"], eager_vars["params"]["w"])


def test_module_lazy_init_equals_init():
  model = nn.Dense(4)
  key = jax.random.key(0)
  lazy = model.lazy_init(key, jax.ShapeDtypeStruct((2, 3), jnp.float32))
  eager = model.init(key, jnp.ones((2, 3)))
  jax.tree.map(np.testing.assert_array_equal, lazy, eager)


def test_module_lazy_init_names_data_dependence():
  class Foo(nn.Module):
    @nn.compact
    def __call__(self, x):
      return x * self.param("k", lambda _: x)

  with pytest.raises(errors.LazyInitError):
    Foo().lazy_init(jax.random.key(0), jax.ShapeDtypeStruct((8, 4), jnp.float32))


@pytest.mark.parametrize("entry", ["init", "init_with_output", "apply", "bind", "lazy_init"])
def test_entry_points_called_on_the_class_name_it(entry):
  with pytest.raises(errors.InvalidInstanceModuleError, match=rf"Dense\.{entry}"):
    getattr(nn.Dense, entry)(jax.random.key(0), jnp.ones(2))
  # called on the class with an instance first, it still works
  variables = nn.Dense.init(nn.Dense(2), jax.random.key(0), jnp.ones(3))
  assert variables["params"]["kernel"].shape == (3, 2)
