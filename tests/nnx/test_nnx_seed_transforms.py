"""The four train_step variants of the NNX-vs-JAX transforms guide give the same update."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import nnx

X = jax.random.normal(jax.random.key(0), (1, 2))
Y = jax.random.normal(jax.random.key(1), (1, 3))


def _sgd(params, grads):
  return jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)


@nnx.jit
def nnx_step(model, x, y):
  def loss_fn(model):
    return ((model(x) - y) ** 2).mean()
  grads = nnx.grad(loss_fn)(model)
  nnx.update(model, _sgd(nnx.state(model, nnx.Param), grads))


@jax.jit
def jax_step(graphdef, state, x, y):
  def loss_fn(graphdef, state):
    model = nnx.merge(graphdef, state)
    return ((model(x) - y) ** 2).mean()
  grads = jax.grad(loss_fn, argnums=1)(graphdef, state)
  model = nnx.merge(graphdef, state)
  nnx.update(model, _sgd(nnx.state(model, nnx.Param), grads))
  return nnx.split(model)


@nnx.jit
def nnx_jit_jax_grad_step(model, x, y):
  def loss_fn(graphdef, state):
    model = nnx.merge(graphdef, state)
    return ((model(x) - y) ** 2).mean()
  grads = jax.grad(loss_fn, 1)(*nnx.split(model))
  nnx.update(model, _sgd(nnx.state(model, nnx.Param), grads))


@jax.jit
def jax_jit_nnx_grad_step(graphdef, state, x, y):
  model = nnx.merge(graphdef, state)
  def loss_fn(model):
    return ((model(x) - y) ** 2).mean()
  grads = nnx.grad(loss_fn)(model)
  nnx.update(model, _sgd(nnx.state(model, nnx.Param), grads))
  return nnx.split(model)


def _reference(kernel, bias, steps):
  """Hand-written squared-error SGD on y = x @ kernel + bias."""
  def loss(kernel, bias):
    return ((X @ kernel + bias - Y) ** 2).mean()
  for _ in range(steps):
    gk, gb = jax.grad(loss, argnums=(0, 1))(kernel, bias)
    kernel, bias = kernel - 0.1 * gk, bias - 0.1 * gb
  return kernel, bias


def _run(variant, steps):
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  if variant in ("nnx", "nnx_jit_jax_grad"):
    step = nnx_step if variant == "nnx" else nnx_jit_jax_grad_step
    for _ in range(steps):
      assert step(model, X, Y) is None
    return model.kernel.value, model.bias.value
  step = jax_step if variant == "jax" else jax_jit_nnx_grad_step
  graphdef, state = nnx.split(model)
  for _ in range(steps):
    graphdef, state = step(graphdef, state, X, Y)
  return state["kernel"].value, state["bias"].value


@pytest.mark.parametrize("variant", ["nnx", "jax", "nnx_jit_jax_grad", "jax_jit_nnx_grad"])
@pytest.mark.parametrize("steps", [1, 3])
def test_variant_matches_hand_written_sgd(variant, steps):
  init = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  ref_kernel, ref_bias = _reference(init.kernel.value, init.bias.value, steps)
  kernel, bias = _run(variant, steps)
  np.testing.assert_allclose(kernel, ref_kernel, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(bias, ref_bias, rtol=1e-6, atol=1e-6)
  assert not np.allclose(kernel, init.kernel.value)


def test_all_variants_identical_after_one_step():
  results = [_run(v, 1) for v in ("nnx", "jax", "nnx_jit_jax_grad", "jax_jit_nnx_grad")]
  for kernel, bias in results[1:]:
    np.testing.assert_array_equal(kernel, results[0][0])
    np.testing.assert_array_equal(bias, results[0][1])


def test_jax_variant_returns_param_state_and_static_graphdef():
  graphdef, state = nnx.split(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
  new_graphdef, new_state = jax_step(graphdef, state, X, Y)
  assert new_graphdef == graphdef
  assert isinstance(new_state["kernel"], nnx.Param)
  assert jnp.shape(new_state["kernel"].value) == (2, 3)
