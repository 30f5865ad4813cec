"""nnx.remat against jax.checkpoint on plain arrays."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np

from flaxen import nnx

X = jnp.asarray(np.random.RandomState(0).randn(3, 2), jnp.float32)


class Block(nnx.Module):
  def __init__(self, rngs):
    self.linear = nnx.Linear(2, 2, rngs=rngs)
    self.calls = nnx.BatchStat(jnp.array(0))

  def __call__(self, x):
    self.calls.value = self.calls.value + 1
    return jnp.sin(self.linear(x))


def _primitives(jaxpr):
  names = set()
  for eqn in jaxpr.eqns:
    names.add(eqn.primitive.name)
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      names |= _primitives(sub)
  return names


# jax.checkpoint's primitive, as named in the jaxpr of a reference function
_CHECKPOINT = jax.make_jaxpr(jax.checkpoint(jnp.sin))(1.0).jaxpr.eqns[0].primitive.name


def test_grad_matches_and_jaxpr_has_checkpoint():
  model = Block(nnx.Rngs(0))

  def loss(m, x):
    return (nnx.remat(lambda m, x: m(x))(m, x) ** 2).sum()

  grads = nnx.grad(loss)(model, X)
  k, b = model.linear.kernel.value, model.linear.bias.value
  ref_fn = jax.checkpoint(lambda k, b, x: jnp.sin(x @ k + b))
  ref = jax.grad(lambda k, b: (ref_fn(k, b, X) ** 2).sum(), argnums=(0, 1))(k, b)
  np.testing.assert_allclose(grads.linear.kernel.value, ref[0], rtol=1e-5)
  np.testing.assert_allclose(grads.linear.bias.value, ref[1], rtol=1e-5)
  assert int(model.calls.value) == 1  # state updates made inside remat come back

  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def pure_loss(params, x):
    return loss(nnx.merge(graphdef, params, rest), x)

  jaxpr = jax.make_jaxpr(jax.grad(pure_loss))(params, X)
  assert _CHECKPOINT in _primitives(jaxpr.jaxpr)
  plain = jax.make_jaxpr(jax.grad(lambda k: (jnp.sin(X @ k) ** 2).sum()))(k)
  assert _CHECKPOINT not in _primitives(plain.jaxpr)


def test_static_argnums_and_decorator_form():
  @nnx.remat(static_argnums=(2,), policy=jax.checkpoint_policies.nothing_saveable)
  def apply(m, x, times):
    for _ in range(times):
      x = m(x)
    return x

  model = Block(nnx.Rngs(0))
  y = apply(model, X, 2)
  k, b = model.linear.kernel.value, model.linear.bias.value
  np.testing.assert_allclose(y, jnp.sin(jnp.sin(X @ k + b) @ k + b), rtol=1e-5)
  assert int(model.calls.value) == 2


def test_remat_inside_jit():
  model = Block(nnx.Rngs(0))

  @nnx.jit
  def step(m, x):
    return nnx.remat(lambda m, x: m(x))(m, x)

  y = step(model, X)
  np.testing.assert_allclose(
    y, jnp.sin(X @ model.linear.kernel.value + model.linear.bias.value), rtol=1e-5)
  assert int(model.calls.value) == 1
