"""core.vjp, core.jvp and core.custom_vjp, against jax.vjp / jax.jvp of the plain math."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import core

# float32 products of 3-vectors: a few ulps
TOL = dict(rtol=1e-6, atol=1e-6)


def scaled(scope, x, y):
  p = scope.param("p", jax.nn.initializers.constant(0.5), (3,))
  scope.variable("state", "calls", lambda: 0)
  return jnp.sin(p * x) * y


def plain(p, x, y):
  return jnp.sin(p * x) * y


X, Y = jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0, 5.0, 6.0])


def test_vjp_matches_jax_vjp_including_params_cotangent():
  def f(scope, x, y):
    z, bwd = core.vjp(scaled, scope, x, y)
    return z, bwd(jnp.ones_like(z) * jnp.array([1.0, -1.0, 2.0]))

  _, v = core.init(f)(jax.random.key(0), X, Y)
  z, (params_grad, x_grad, y_grad) = core.apply(f)(v, X, Y)
  p = v["params"]["p"]
  ref_z, ref_bwd = jax.vjp(plain, p, X, Y)
  ref_p, ref_x, ref_y = ref_bwd(jnp.array([1.0, -1.0, 2.0]))
  np.testing.assert_allclose(z, ref_z, **TOL)
  assert set(params_grad) == {"params"}  # only vjp_variables get a cotangent
  np.testing.assert_allclose(params_grad["params"]["p"], ref_p, **TOL)
  np.testing.assert_allclose(x_grad, ref_x, **TOL)
  np.testing.assert_allclose(y_grad, ref_y, **TOL)


def test_vjp_has_aux():
  def g(scope, x, y):
    return scaled(scope, x, y).sum(), x * 3

  def f(scope, x, y):
    z, bwd, aux = core.vjp(g, scope, x, y, has_aux=True)
    return aux, bwd(jnp.float32(1.0))[1]

  _, v = core.init(f)(jax.random.key(0), X, Y)
  aux, x_grad = core.apply(f)(v, X, Y)
  np.testing.assert_array_equal(aux, X * 3)
  ref = jax.grad(lambda x: plain(v["params"]["p"], x, Y).sum())(X)
  np.testing.assert_allclose(x_grad, ref, **TOL)


def test_jvp_matches_jax_jvp_with_variable_tangents():
  p_t = jnp.array([1.0, 0.0, -1.0])
  x_t = jnp.array([0.5, 0.5, 0.5])

  def f(scope, x, y):
    return core.jvp(scaled, scope, (x, y), (x_t, jnp.zeros_like(y)),
                    {"params": {"p": p_t}})

  _, v = core.init(f)(jax.random.key(0), X, Y)
  z, z_t = core.apply(f)(v, X, Y)
  ref_z, ref_t = jax.jvp(plain, (v["params"]["p"], X, Y), (p_t, x_t, jnp.zeros(3)))
  np.testing.assert_allclose(z, ref_z, **TOL)
  np.testing.assert_allclose(z_t, ref_t, **TOL)


def test_custom_vjp_uses_the_user_rule():
  def fwd(scope, x, y):
    z, bwd = core.vjp(scaled, scope, x, y)
    return z, bwd

  def bwd(vjp_fn, z_t):
    params_t, x_t, y_t = vjp_fn(z_t)
    return jax.tree.map(jnp.sign, params_t), -x_t, y_t  # a rule that is not the gradient

  sign_grad = core.custom_vjp(scaled, forward_fn=fwd, backward_fn=bwd)
  _, v = core.init(sign_grad)(jax.random.key(0), X, Y)

  def loss(params, x):
    return core.apply(sign_grad)({**v, "params": params}, x, Y).sum()

  np.testing.assert_allclose(loss(v["params"], X), plain(v["params"]["p"], X, Y).sum(), **TOL)
  gv, gx = jax.grad(loss, argnums=(0, 1))(v["params"], X)
  ref_p, ref_x = jax.grad(lambda p, x: plain(p, x, Y).sum(), argnums=(0, 1))(
    v["params"]["p"], X)
  np.testing.assert_allclose(gv["p"], jnp.sign(ref_p), **TOL)
  np.testing.assert_allclose(gx, -ref_x, **TOL)


def test_custom_vjp_nondiff_argnums_reach_backward_first():
  def f(scope, x, power):
    return x ** power

  def fwd(scope, x, power):
    return x ** power, x

  def bwd(power, x, g):
    return {"params": {}}, g * power * x ** (power - 1) * 10  # scaled to tell it apart

  rule = core.custom_vjp(f, fwd, bwd, nondiff_argnums=(2,))
  g = jax.grad(lambda x: core.apply(rule)({"params": {}}, x, 3).sum())(X)
  np.testing.assert_allclose(g, 30 * X ** 2, **TOL)


def test_value_and_grad_wrt_primals_only():
  def f(scope, x, y):
    return core.lift.value_and_grad(lambda s, x, y: scaled(s, x, y).sum(), scope, x, y)

  _, v = core.init(f)(jax.random.key(0), X, Y)
  value, (x_grad, y_grad) = core.apply(f)(v, X, Y)
  p = v["params"]["p"]
  ref_value, (ref_x, ref_y) = jax.value_and_grad(lambda x, y: plain(p, x, y).sum(),
                                                 argnums=(0, 1))(X, Y)
  np.testing.assert_allclose(value, ref_value, **TOL)
  np.testing.assert_allclose(x_grad, ref_x, **TOL)
  np.testing.assert_allclose(y_grad, ref_y, **TOL)
