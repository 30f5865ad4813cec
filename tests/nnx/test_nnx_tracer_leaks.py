"""A tracer stored on a Module inside a transform, where it would outlive the trace, raises
a flaxen error naming the attribute and the fix, not JAX's UnexpectedTracerError later."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx

X = jnp.ones((2, 3))


class Box:  # a plain Python object: static to NNX, so the graph carries nothing out of it
  pass


def linear():
  return nnx.Linear(3, 2, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("make", [linear, lambda: nnx.Sequential(linear(), linear())],
                         ids=["own Variables", "child modules' Variables"])
def test_closed_over_module_attribute_under_jax_jit(make):
  model = make()

  @jax.jit
  def f(x):
    model.cache = x * 2
    return x

  with pytest.raises(errors.TraceContextError, match=r"attribute 'cache' of this") as e:
    f(X)
  assert "pass the module to an nnx transform as an argument" in str(e.value)
  assert not hasattr(model, "cache")


def test_closed_over_module_under_jax_vmap():
  model = linear()
  with pytest.raises(errors.TraceContextError, match="'last'"):
    jax.vmap(lambda x: setattr(model, "last", x))(X)


def test_module_passed_in_or_made_inside_may_hold_tracers():
  model = linear()

  @nnx.jit
  def step(m, x):
    m.cache = x * 2  # an array attribute: state that nnx.jit carries out
    fresh = nnx.Linear(3, 2, rngs=nnx.Rngs(1))
    fresh.cache = x  # made in this trace
    return fresh(x)

  step(model, X)
  np.testing.assert_array_equal(model.cache, X * 2)

  # As a pytree through jax.jit the module is rebuilt inside the trace: no check applies.
  out = jax.jit(lambda m, x: (setattr(m, "y", x), m.y)[1])(linear(), X)
  np.testing.assert_array_equal(out, X)


@pytest.mark.parametrize("name, transform", [
  ("nnx.vmap", lambda f: nnx.vmap(f, in_axes=(None, 0))),
  ("nnx.remat", nnx.remat),
  ("nnx.grad", lambda f: nnx.grad(lambda m, x: f(m, x) + (m(x) ** 2).sum())),
  ("nnx.jit", nnx.jit),
])
def test_tracer_left_in_a_static_attribute(name, transform):
  model = linear()
  model.box = Box()

  def f(m, x):
    m.box.kept = m.kernel.value.sum() * x.sum()
    return x.sum()

  with pytest.raises(errors.TracerLeakError, match=rf"{name}: .*'box/kept'") as e:
    transform(f)(model, X)
  assert e.value.path == ("box", "kept")
  assert "nnx.Variable" in str(e.value)


def test_concrete_static_values_are_not_leaks():
  model = linear()
  model.box = Box()
  model.box.kept = 1.0
  out = nnx.vmap(lambda m, x: m(x), in_axes=(None, 0))(model, X[:, None])
  assert out.shape == (2, 1, 2) and model.box.kept == 1.0
