"""nnx.Optimizer against optax applied by hand; its state as a graph node."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flaxen import errors, nnx

X = jnp.array([[1.0, 2.0], [-1.0, 0.5]])
Y = jnp.array([[0.5], [1.0]])


class Net(nnx.Module):
  def __init__(self):
    self.lin = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    self.stat = nnx.BatchStat(jnp.zeros(()))

  def __call__(self, x):
    return self.lin(x)


def _loss(model):
  return jnp.mean((model(X) - Y) ** 2)


def _reference(params, tx, steps):
  def loss(p):
    return jnp.mean((X @ p["lin"]["kernel"] + p["lin"]["bias"] - Y) ** 2)
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  return params


@pytest.mark.parametrize("make_tx", [lambda: optax.sgd(0.1), lambda: optax.adam(0.05),
                                     lambda: optax.adamw(0.05, weight_decay=0.1)])
def test_jitted_updates_match_optax(make_tx):
  model = Net()
  params = nnx.state(model, nnx.Param).to_pure_dict()
  opt = nnx.Optimizer(model, make_tx(), wrt=nnx.Param)

  @nnx.jit
  def step(model, opt):
    loss, grads = nnx.value_and_grad(_loss)(model)
    opt.update(model, grads)
    return loss

  for _ in range(3):
    step(model, opt)
  ref = _reference(params, make_tx(), 3)
  np.testing.assert_allclose(model.lin.kernel.value, ref["lin"]["kernel"], rtol=1e-5)
  np.testing.assert_allclose(model.lin.bias.value, ref["lin"]["bias"], rtol=1e-5)
  assert int(opt.step.value) == 3
  assert float(model.stat.value) == 0.0


def test_older_update_form_and_errors():
  model = Net()
  opt = nnx.ModelAndOptimizer(model, optax.sgd(1.0))
  grads = nnx.grad(_loss)(model)
  before = model.lin.bias.value
  opt.update(grads)
  np.testing.assert_allclose(model.lin.bias.value, before - grads.lin.bias.value, rtol=1e-6)
  with pytest.raises(errors.OptimizerUpdateError):
    opt.update()
  plain = nnx.Optimizer(model, optax.sgd(1.0), wrt=nnx.Param)
  with pytest.raises(errors.OptimizerUpdateError, match="ModelAndOptimizer"):
    plain.update(grads)  # Flax 0.11+: the model is an argument
  with pytest.raises(errors.OptimizerModelError):
    plain.model
  assert not hasattr(plain, "model")
  with pytest.raises(errors.OptimizerUpdateError, match="State"):
    plain.update(model, {"lin": 1})


def test_optimizer_state_is_graph_state():
  model = Net()
  opt = nnx.Optimizer(model, optax.adam(0.1), wrt=nnx.Param)
  opt_state = nnx.state(opt, nnx.OptState)
  paths = {p for p, _ in opt_state.flat_state()}
  assert ("step",) in paths and any(p[0] == "opt_state" for p in paths)
  assert not any(p[0] == "model" for p in paths)
  graphdef, state = nnx.split(opt)
  assert not any(p[0] == "model" for p, _ in state.flat_state())
  opt2 = nnx.merge(graphdef, state, copy=True)
  opt2.update(model, nnx.grad(_loss)(model))
  assert int(opt2.step.value) == 1 and int(opt.step.value) == 0
  assert nnx.merge(graphdef, state).step is opt.step  # without copy: the same Variable


def test_wrt_filter_restricts_updates():
  model = Net()
  opt = nnx.Optimizer(model, optax.sgd(1.0), wrt=nnx.PathContains("bias"))
  kernel = model.lin.kernel.value
  opt.update(model, nnx.grad(_loss, argnums=nnx.DiffState(0, nnx.PathContains("bias")))(model))
  np.testing.assert_array_equal(model.lin.kernel.value, kernel)
