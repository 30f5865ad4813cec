"""nnx.grad / nnx.value_and_grad against hand-written JAX gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import nnx

X = jnp.array([[1.0, -2.0], [0.5, 3.0]])


def _loss_ref(kernel, bias, x):
  return jnp.mean((x @ kernel + bias) ** 2)


def _model():
  return nnx.Linear(2, 3, rngs=nnx.Rngs(0))


def test_grad_matches_jax_grad_and_is_a_param_state():
  m = _model()
  grads = nnx.grad(lambda m, x: jnp.mean(m(x) ** 2))(m, X)
  gk, gb = jax.grad(_loss_ref, argnums=(0, 1))(m.kernel.value, m.bias.value, X)
  assert isinstance(grads, nnx.State) and isinstance(grads.kernel, nnx.Param)
  np.testing.assert_allclose(grads.kernel.value, gk, rtol=1e-6)
  np.testing.assert_allclose(grads.bias.value, gb, rtol=1e-6)


def test_value_and_grad_with_aux_and_several_argnums():
  m = _model()

  def loss(m, x):
    y = m(x)
    return jnp.mean(y ** 2), y.shape

  (value, aux), (gm, gx) = nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True)(m, X)
  assert aux == (2, 3)
  assert float(value) == pytest.approx(float(_loss_ref(m.kernel.value, m.bias.value, X)))
  np.testing.assert_allclose(gx, jax.grad(_loss_ref, argnums=2)(m.kernel.value, m.bias.value,
                                                                X), rtol=1e-6)
  assert set(gm) == {"kernel", "bias"}
  grads, aux2 = nnx.grad(loss, has_aux=True)(m, X)
  assert aux2 == (2, 3) and set(grads) == {"kernel", "bias"}


def test_diff_state_selects_variables():
  class M(nnx.Module):
    def __init__(self):
      self.w = nnx.Param(jnp.array(2.0))
      self.c = nnx.Cache(jnp.array(3.0))

  def loss(m):
    return m.w.value * m.c.value ** 2

  grads = nnx.grad(loss, argnums=nnx.DiffState(0, nnx.Cache))(M())
  assert set(grads) == {"c"} and float(grads.c.value) == pytest.approx(12.0)
  grads = nnx.grad(loss, argnums=nnx.DiffState(0, ...))(M())
  assert float(grads.w.value) == pytest.approx(9.0)


def test_non_differentiated_state_changes_propagate():
  class M(nnx.Module):
    def __init__(self):
      self.w = nnx.Param(jnp.array(2.0))
      self.calls = nnx.BatchStat(jnp.array(0))

    def __call__(self, x):
      self.calls.value += 1
      self.last = nnx.Intermediate(x)
      return self.w * x

  m = M()
  grads = nnx.grad(lambda m: m(3.0))(m)
  assert float(grads.w.value) == 3.0
  assert int(m.calls.value) == 1 and float(m.last.value) == 3.0


def test_grad_of_model_inside_container_argument():
  a, b = _model(), _model()
  grads = nnx.grad(lambda ms: jnp.mean(ms[0](X) + ms[1](X)))([a, b])
  assert isinstance(grads, list) and isinstance(grads[1], nnx.State)
  np.testing.assert_allclose(grads[0].bias.value, jnp.ones(3) * 2 / 6, rtol=1e-6)


def test_shared_params_get_summed_gradient():
  class Tied(nnx.Module):
    def __init__(self):
      self.a = nnx.Param(jnp.array(3.0))
      self.b = self.a

  grads = nnx.grad(lambda m: m.a.value * m.b.value)(Tied())
  assert list(grads) == ["a"] and float(grads.a.value) == pytest.approx(6.0)


def test_grad_under_jax_jit_and_nnx_jit_agree():
  m = _model()
  eager = nnx.grad(lambda m: jnp.sum(m(X)))(m)

  @jax.jit
  def pure(graphdef, state):
    return nnx.grad(lambda m: jnp.sum(m(X)))(nnx.merge(graphdef, state))

  jitted = nnx.jit(lambda m: nnx.grad(lambda m: jnp.sum(m(X)))(m))(m)
  for g in (pure(*nnx.split(m)), jitted):
    np.testing.assert_allclose(g.kernel.value, eager.kernel.value, rtol=1e-6)


def test_decorator_form_with_keyword_argnums():
  @nnx.grad(argnums=1)
  def g(m, x):
    return jnp.sum(m(x))

  m = _model()
  np.testing.assert_allclose(g(m, X), jnp.broadcast_to(m.kernel.value.sum(1), X.shape),
                             rtol=1e-6)
  vg = nnx.value_and_grad(has_aux=True)(lambda m: (jnp.sum(m(X)), 1))
  (value, aux), grads = vg(m)
  assert aux == 1 and isinstance(grads, nnx.State)


def test_vjp_matches_jax_vjp():
  m = _model()
  out, pullback = nnx.vjp(lambda m, x: m(x) ** 2, m, X)
  ref_out, ref_pullback = jax.vjp(lambda k, b, x: (x @ k + b) ** 2, m.kernel.value,
                                  m.bias.value, X)
  ct = jnp.arange(6.0).reshape(2, 3)
  g_model, g_x = pullback(ct)
  gk, gb, gx = ref_pullback(ct)
  np.testing.assert_allclose(out, ref_out, rtol=1e-6)
  np.testing.assert_allclose(g_model.kernel.value, gk, rtol=1e-5)
  np.testing.assert_allclose(g_model.bias.value, gb, rtol=1e-5)
  np.testing.assert_allclose(g_x, gx, rtol=1e-5)
  _, _, aux = nnx.vjp(lambda m: (m(X).sum(), "aux"), m, has_aux=True)
  assert aux == "aux"


def test_jvp_matches_jax_jvp():
  m = _model()
  tangent_model = jax.tree.map(jnp.ones_like, nnx.state(m, nnx.Param))
  tangent_x = jnp.full_like(X, 0.5)
  out, t_out = nnx.jvp(lambda m, x: m(x) ** 2, (m, X), (tangent_model, tangent_x))
  ref_out, ref_t = jax.jvp(lambda k, b, x: (x @ k + b) ** 2,
                           (m.kernel.value, m.bias.value, X),
                           (jnp.ones((2, 3)), jnp.ones(3), tangent_x))
  np.testing.assert_allclose(out, ref_out, rtol=1e-6)
  np.testing.assert_allclose(t_out, ref_t, rtol=1e-5)
