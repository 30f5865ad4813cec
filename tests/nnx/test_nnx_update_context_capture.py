"""update_context / split_context / merge_context and nnx.capture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import nnx


class Bar(nnx.Module):
  def __init__(self):
    self.x = 1


class Foo(nnx.Module):
  def __init__(self):
    self.a = Bar()
    self.b = self.a


def _round_trip(m1, change, jit=False):
  with nnx.update_context("t"):
    with nnx.split_context("t") as ctx:
      graphdef, state = ctx.split(m1)

    def inner(graphdef, state):
      with nnx.merge_context("t", inner=True) as ctx:
        m2 = ctx.merge(graphdef, state)
      change(m2)
      with nnx.split_context("t") as ctx:
        return ctx.split(m2)

    graphdef, state = (jax.jit(inner) if jit else inner)(graphdef, state)
    with nnx.merge_context("t", inner=False) as ctx:
      return ctx.merge(graphdef, state)


@pytest.mark.parametrize("jit", [False, True])
def test_changes_to_the_copy_reach_the_original(jit):
  m1 = Foo()

  def change(m2):
    m2.a.x = 2
    m2.c = Bar()
    m2.d = m2.a

  m3 = _round_trip(m1, change, jit)
  assert m3 is m1 and m1.a.x == 2 and m1.b.x == 2
  assert isinstance(m1.c, Bar) and m1.d is m1.a


def test_values_flow_back_through_jit():
  m1 = nnx.Dict(w=nnx.Param(jnp.ones(2)))
  w = m1["w"]

  def change(m2):
    m2["w"].value = m2["w"].value * 3

  assert _round_trip(m1, change, jit=True) is m1
  assert m1["w"] is w
  np.testing.assert_array_equal(w.value, [3.0, 3.0])


def test_without_a_context_split_and_merge_are_plain():
  m = Foo()
  with nnx.split_context() as ctx:
    gd, st = ctx.split(m)
  with nnx.merge_context() as ctx:
    m2 = ctx.merge(gd, st)
  assert m2 is not m and m2.a is m2.b
  with pytest.raises(ValueError, match="No update context"):
    nnx.current_update_context("missing")


def test_capture_collects_sowed_values_and_leaves_model_clean():
  class Model(nnx.Module):
    def __init__(self):
      self.w = nnx.Param(jnp.full((2,), 2.0))

    def __call__(self, x):
      x = self.perturb("px", x)
      y = x * self.w
      self.sow(nnx.Intermediate, "y", y)
      return y.sum()

  model = Model()
  x = jnp.ones(2)
  _, perturbations = nnx.capture(model, nnx.Perturbation)(x)
  assert "px" not in vars(model)
  # the gradient with respect to the perturbation is d(sum(x * w))/dx = w
  grads = jax.grad(lambda p: nnx.capture(model, nnx.Intermediate, init=p)(x)[0])(
    perturbations)
  np.testing.assert_array_equal(grads["px"].value, [2.0, 2.0])
  _, intms = nnx.capture(model, nnx.Intermediate, init=perturbations)(x)
  np.testing.assert_array_equal(intms["y"][0], [2.0, 2.0])
  assert "px" not in vars(model) and "y" not in vars(model)


def test_capture_method_outputs():
  class Inner(nnx.Module):
    def process(self, x):
      return x + 1

  class Outer(nnx.Module):
    def __init__(self):
      self.inner = Inner()

    def __call__(self, x):
      return self.inner.process(x) * 2

  y, intms = nnx.capture(Outer(), nnx.Intermediate, method_outputs=nnx.Intermediate)(1.0)
  assert y == 4.0 and intms["__call__"][0] == 4.0 and intms["inner"]["process"][0] == 2.0
  assert Inner.process.__name__ == "process" and not hasattr(Inner.process, "_nnx_sowing")


def test_capture_of_a_function_taking_the_module():
  class Foo(nnx.Module):
    def __call__(self, x):
      self.sow(nnx.Intermediate, "x2", x * 2)
      return x

  def forward(module, x):
    return module(x) + 1

  foo = Foo()
  out, intms = nnx.capture(forward, nnx.Intermediate)(foo, 3.0)
  assert out == 4.0 and intms["x2"][0] == 6.0 and "x2" not in vars(foo)
  with pytest.raises(TypeError, match="none of its arguments is a Module"):
    nnx.capture(lambda x: x, nnx.Intermediate)(1.0)
