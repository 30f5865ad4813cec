"""nnx.capture with init: the given perturbations are not handed back as sown state, so the
gradient w.r.t. them (merged with the sown state) survives."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import nnx


class Foo(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.array([1.5, -2.0, 0.25]))

  def __call__(self, x):
    x = self.perturb("dx", x)
    y = jnp.dot(x, self.w.value)
    self.sow(nnx.Intermediate, "y", y)
    return y


def test_capture_with_init_returns_only_what_the_call_sowed():
  model, x = Foo(), jnp.ones((3,))
  _, perts = nnx.capture(model, nnx.Perturbation)(x)
  out, sown = nnx.capture(model, nnx.Intermediate, init=perts)(x)
  assert set(sown.keys()) == {"y"}  # a Perturbation is an Intermediate, but it was given
  assert not hasattr(model, "dx") and not hasattr(model, "y")  # the model is left as it was
  np.testing.assert_allclose(out, x @ model.w.value, rtol=1e-6)


def test_perturbation_grads_under_vmap_merge_with_the_sown_state():
  model, x = Foo(), jnp.ones((2, 3))
  perts = nnx.State({"dx": nnx.Perturbation(jnp.zeros((2, 3)))})

  def loss_grad(model, perts, x):
    def loss(model, perts, x):
      return nnx.capture(model, nnx.Intermediate, init=perts)(x)
    (_, g), sown = nnx.grad(loss, argnums=(0, 1), has_aux=True)(model, perts, x)
    return nnx.merge_state(g, sown)

  out = nnx.jit(nnx.vmap(loss_grad, in_axes=(None, 0, 0)))(model, perts, x)
  # d(x + dx) . w / d dx = w for every row, exactly
  np.testing.assert_array_equal(out["dx"].value, jnp.broadcast_to(model.w.value, (2, 3)))
  np.testing.assert_allclose(out["y"].value[0], jax.vmap(lambda r: r @ model.w.value)(x),
                             rtol=1e-6)
