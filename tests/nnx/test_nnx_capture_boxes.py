"""nnx.capture: what sow / perturb store inside transforms without graph updates comes back
(the values go into a Variable per Module, which every transform carries)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import nnx


class _Step(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.array(2.0))

  def __call__(self, carry, x):
    y = carry * self.w.value + x
    self.sow(nnx.Intermediate, "y", y)
    return y, None


@pytest.mark.parametrize("graph", [True, False])
def test_sow_inside_scan_without_graph_updates(graph):
  model = _Step()
  xs = jnp.arange(4.0)

  def forward(m, c, xs):
    axes = nnx.prefix(m, {nnx.Intermediate: 0, ...: None}, graph=graph)
    return nnx.scan(lambda m, c, x: m(c, x), in_axes=(axes, nnx.Carry, 0), graph=graph,
                    graph_updates=False)(m, c, xs)

  (final, _), intms = nnx.capture(forward, nnx.Intermediate)(model, jnp.array(1.0), xs)
  expected, c = [], 1.0  # the recurrence by hand: c <- 2c + x
  for x in range(4):
    c = 2 * c + x
    expected.append(c)
  np.testing.assert_allclose(intms["y"].value[0], expected)  # exact small integers
  assert final == expected[-1]
  assert not hasattr(model, "y") and nnx.state(model, nnx.Intermediate) == nnx.State({})


def test_sow_inside_jit_without_graph_updates_and_nested_modules():
  class Outer(nnx.Module):
    def __init__(self):
      self.inner = _Step()

    def __call__(self, x):
      y, _ = self.inner(x, 1.0)
      self.sow(nnx.Intermediate, "out", 3 * y)
      return y

  model = Outer()
  fwd = nnx.jit(lambda m, x: m(x), graph_updates=False)
  y, intms = nnx.capture(fwd, nnx.Intermediate)(model, jnp.array(2.0))
  assert y == 5.0  # 2 * 2 + 1
  assert intms["inner"]["y"].value == (5.0,) and intms["out"].value == (15.0,)
  assert not any(k.startswith("_nnx_captured") for k in vars(model))


def test_perturb_in_a_vmapped_merge_and_its_gradient():
  class Scale(nnx.Module):
    def __init__(self):
      self.w = nnx.Param(jnp.array([1.0, -2.0]))

    def __call__(self, x):
      x = self.perturb("px", x)
      return jnp.sum(x * self.w.value)

    def pre_run(self, x):  # runs a merged copy per example: the boxes are shared Variables
      graphdef, pert, params = nnx.split(self, nnx.Perturbation, nnx.Param)
      nnx.vmap(lambda p, q, x: nnx.merge(graphdef, p, q)(x), in_axes=(0, None, 0))(
        pert, params, x)

  model, xs = Scale(), jnp.ones((3, 2))
  _, perts = nnx.capture(model.pre_run, nnx.Perturbation)(xs)
  assert perts["px"].value.shape == (3, 2)  # zeros, one row per example
  np.testing.assert_array_equal(perts["px"].value, 0.0)

  def loss(m, p, x):
    return nnx.capture(m, nnx.Intermediate, init=p)(x)[0]

  grads = jax.vmap(lambda p, x: nnx.grad(loss, argnums=1)(model, p, x))(perts, xs)
  # d/dp sum((x + p) * w) = w, per example
  np.testing.assert_array_equal(grads["px"].value, jnp.broadcast_to(model.w.value, (3, 2)))
