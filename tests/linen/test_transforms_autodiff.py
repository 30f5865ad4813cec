"""nn.vjp / nn.jvp / nn.grad / nn.value_and_grad / nn.custom_vjp against jax's own."""

import jax
import jax.numpy as jnp
import numpy as np

import flaxen.linen as nn


def close(a, b, tol=1e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


class Scale(nn.Module):
  @nn.compact
  def __call__(self, x, y):
    w = self.param("w", nn.initializers.normal(1.0), x.shape)
    return jnp.sum(jnp.sin(w * x) * y)


def scale_ref(w, x, y):
  return jnp.sum(jnp.sin(w * x) * y)


class WithVjp(nn.Module):
  @nn.compact
  def __call__(self, x, y):
    scale = Scale()
    if self.is_initializing():
      scale(x, y)
    z, bwd = nn.vjp(lambda mdl, x, y: mdl(x, y), scale, x, y)
    return z, bwd(jnp.ones_like(z))


def test_vjp_gives_param_and_input_cotangents():
  x, y = jnp.arange(3.0), jnp.ones(3) * 2
  variables = WithVjp().init(jax.random.key(0), x, y)
  w = variables["params"]["Scale_0"]["w"]
  z, (params_ct, x_ct, y_ct) = WithVjp().apply(variables, x, y)
  ref_z, ref_bwd = jax.vjp(scale_ref, w, x, y)
  ref = ref_bwd(jnp.ones_like(ref_z))
  close(z, ref_z)
  close((params_ct, x_ct, y_ct), ({"params": {"w": ref[0]}}, ref[1], ref[2]))


class WithGrad(nn.Module):
  @nn.compact
  def __call__(self, x, y):
    f = lambda mdl, x, y: mdl(x, y)
    value, grads = nn.value_and_grad(f, Scale(), x, y)
    return value, grads, nn.grad(f, Scale(name="other"), x, y)


def test_grad_and_value_and_grad_are_with_respect_to_the_primals():
  x, y = jnp.arange(3.0), jnp.ones(3) * 2
  variables = WithGrad().init(jax.random.key(0), x, y)
  value, grads, other = WithGrad().apply(variables, x, y)
  w = variables["params"]["Scale_0"]["w"]
  close(value, scale_ref(w, x, y))
  close(grads, jax.grad(scale_ref, argnums=(1, 2))(w, x, y))
  w2 = variables["params"]["other"]["w"]
  close(other, jax.grad(scale_ref, argnums=(1, 2))(w2, x, y))


class WithJvp(nn.Module):
  @nn.compact
  def __call__(self, x, y):
    scale = Scale()
    if self.is_initializing():
      scale(x, y)
    tangents = jax.tree.map(jnp.ones_like, scale.variables["params"])
    return nn.jvp(lambda mdl, x, y: mdl(x, y), scale, (x, y), (jnp.zeros_like(x), y),
                  variable_tangents={"params": tangents})


def test_jvp_with_variable_tangents():
  x, y = jnp.arange(3.0), jnp.ones(3) * 2
  variables = WithJvp().init(jax.random.key(0), x, y)
  w = variables["params"]["Scale_0"]["w"]
  out = WithJvp().apply(variables, x, y)
  close(out, jax.jvp(scale_ref, (w, x, y), (jnp.ones_like(w), jnp.zeros_like(x), y)))


class SignGrad(nn.Module):
  @nn.compact
  def __call__(self, x):
    def f(mdl, x):
      return mdl(x)

    def fwd(mdl, x):
      return nn.vjp(f, mdl, x)

    def bwd(vjp_fn, y_t):
      params_t, *inputs_t = vjp_fn(y_t)
      return (jax.tree.map(jnp.sign, params_t), *inputs_t)

    sign_grad = nn.custom_vjp(f, forward_fn=fwd, backward_fn=bwd)
    return sign_grad(nn.Dense(1), x).reshape(())


def test_custom_vjp_replaces_the_param_gradient():
  x = jnp.array([1.0, -2.0, 3.0])
  variables = SignGrad().init(jax.random.key(0), x)
  p = variables["params"]
  close(SignGrad().apply(variables, x),
        (x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]).reshape(()))
  grads = jax.grad(lambda p: SignGrad().apply({"params": p}, x))(p)
  close(grads, {"Dense_0": {"kernel": jnp.sign(x)[:, None], "bias": jnp.ones(1)}})
  x_grad = jax.grad(lambda x: SignGrad().apply(variables, x))(x)
  close(x_grad, p["Dense_0"]["kernel"][:, 0])
