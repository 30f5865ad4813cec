"""nnx.EMA against the hand-written recurrence, in graph and tree mode; nnx.TrainState
against optax applied by hand; Optimizer's graph parameter and returned updates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flaxen import errors, nnx


class Net(nnx.Module):
  def __init__(self):
    self.lin = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    self.steps = nnx.Variable(jnp.array(0))  # integer: not tracked by default


@pytest.mark.parametrize("graph", [True, False])
def test_ema_follows_the_recurrence(graph):
  model = Net()
  ema = nnx.EMA(model, decay=0.75, graph=graph)
  assert "steps" not in ema.params
  ref = np.asarray(model.lin.kernel.value)
  for _ in range(3):
    model.lin.kernel.value = model.lin.kernel.value + 1.0
    ema.update(model)
    ref = 0.75 * ref + 0.25 * np.asarray(model.lin.kernel.value)
  # three float32 multiply-adds: 1e-6 relative
  np.testing.assert_allclose(ema.params["lin"]["kernel"].value, ref, rtol=1e-6)


def test_ema_apply_to_shares_the_averages_and_copies_the_rest():
  model = Net()
  ema = nnx.EMA(model, decay=0.5)
  view = ema.apply_to(model)
  assert view.lin.kernel is ema.params["lin"]["kernel"]
  assert view.steps is not model.steps and int(view.steps.value) == 0
  model.lin.bias.value = jnp.full((2,), 4.0)
  ema.update(model)
  np.testing.assert_allclose(view.lin.bias.value, jnp.full((2,), 2.0))


def test_ema_inside_jit_with_an_optimizer():
  model = Net()
  opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
  ema = nnx.EMA(model, decay=0.9)
  x = jnp.ones((1, 2))

  @nnx.jit
  def step(model, opt, ema):
    opt.update(model, nnx.grad(lambda m: jnp.sum(m.lin(x) ** 2))(model))
    ema.update(model)

  before = np.asarray(ema.params["lin"]["kernel"].value)
  step(model, opt, ema)
  np.testing.assert_allclose(ema.params["lin"]["kernel"].value,
                             0.9 * before + 0.1 * np.asarray(model.lin.kernel.value), rtol=1e-6)


def test_ema_rejects_non_variable_leaves():
  class Raw(nnx.Module):
    def __init__(self):
      self.w = jnp.ones(2)

  with pytest.raises(errors.EMALeafError, match="'w'"):
    nnx.EMA(Raw(), decay=0.9, only=...)


def test_train_state_matches_optax_by_hand():
  graphdef, params = nnx.split(nnx.Linear(2, 1, rngs=nnx.Rngs(0)))
  tx = optax.adam(0.1)
  state = nnx.TrainState.create(graphdef, params=params, tx=tx)
  x = jnp.array([[1.0, -2.0]])

  def loss(p):
    y, _ = state.replace(params=p).apply("params")(x)
    return jnp.sum(y ** 2)

  raw = params.to_pure_dict()

  def raw_loss(p):
    return jnp.sum((x @ p["kernel"] + p["bias"]) ** 2)

  raw_opt = tx.init(raw)
  step = jax.jit(lambda s: s.apply_gradients(jax.grad(loss)(s.params)))
  for _ in range(2):
    state = step(state)
    updates, raw_opt = tx.update(jax.grad(raw_loss)(raw), raw_opt, raw)
    raw = optax.apply_updates(raw, updates)
  assert int(state.step) == 2
  np.testing.assert_allclose(state.params["kernel"].value, raw["kernel"], rtol=1e-6)
  np.testing.assert_allclose(state.params["bias"].value, raw["bias"], rtol=1e-6)


def test_train_state_apply_reaches_methods_and_returns_the_split_model():
  class Counter(nnx.Module):
    def __init__(self):
      self.n = nnx.BatchStat(jnp.array(0.0))

    def bump(self, by):
      self.n.value += by
      return self.n.value

  graphdef, params = nnx.split(Counter())
  state = nnx.TrainState.create(graphdef, params=params, tx=optax.sgd(0.1))
  out, (gd, new) = state.apply("params").bump(3.0)
  assert float(out) == 3.0 and float(new["n"].value) == 3.0 and gd == graphdef
  assert float(state.params["n"].value) == 0.0  # the state itself is unchanged


@pytest.mark.parametrize("graph", [True, False])
def test_optimizer_graph_modes_return_the_same_updates(graph):
  model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.sgd(0.5), wrt=nnx.Param, graph=graph)
  grads = nnx.grad(lambda m: jnp.sum(m(jnp.ones((1, 2)))))(model)
  updates = opt.update(model, grads)
  np.testing.assert_allclose(updates["kernel"], -0.5 * grads["kernel"].value)
  assert "model" not in nnx.state(opt)


def _train(graph):
  model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.adam(0.1), wrt=nnx.Param, graph=graph)
  ema = nnx.EMA(model, 0.9, graph=graph)
  metrics = nnx.MultiMetric(loss=nnx.metrics.Average("loss"))

  @nnx.jit(graph=graph)
  def step(model, opt, ema, metrics, x):
    loss, grads = nnx.value_and_grad(lambda m: jnp.sum(m(x) ** 2), graph=graph)(model)
    opt.update(model, grads)
    ema.update(model)
    metrics.update(loss=loss)
    return loss

  losses = [float(step(model, opt, ema, metrics, jnp.ones((1, 2)))) for _ in range(2)]
  return losses, model, ema, metrics


def test_train_step_with_optimizer_ema_and_metrics_in_tree_and_graph_mode():
  (tree_losses, tree_model, tree_ema, tree_metrics) = _train(False)
  (graph_losses, graph_model, graph_ema, _) = _train(True)
  assert tree_losses == graph_losses and tree_losses[1] < tree_losses[0]
  np.testing.assert_allclose(tree_metrics.compute()["loss"], np.mean(tree_losses), rtol=1e-6)
  np.testing.assert_array_equal(tree_model.kernel.value, graph_model.kernel.value)
  np.testing.assert_array_equal(tree_ema.params["kernel"].value, graph_ema.params["kernel"].value)


def test_opt_state_keeps_param_metadata_and_optimizer_sharding():
  init = nnx.with_partitioning(nnx.initializers.lecun_normal(), ("a", "b"))
  model = nnx.Linear(2, 3, kernel_init=init, use_bias=False, rngs=nnx.Rngs(0))
  mu = nnx.Optimizer(model, optax.adam(0.1), wrt=nnx.Param).opt_state[0].mu["kernel"]
  assert type(mu) is nnx.OptVariable and mu.out_sharding == ("a", "b")
  split = nnx.Linear(2, 3, kernel_metadata={"optimizer_sharding": ("c", None)},
                     use_bias=False, rngs=nnx.Rngs(0))
  mu = nnx.Optimizer(split, optax.adam(0.1), wrt=nnx.Param).opt_state[0].mu["kernel"]
  assert mu.out_sharding == ("c", None) and "optimizer_sharding" not in mu.get_metadata()
  # L-BFGS keeps a history of a higher rank: the param's 2 names do not fit it
  hist = nnx.Optimizer(model, optax.lbfgs(), wrt=nnx.Param).opt_state[0].diff_params_memory
  assert hist["kernel"].value.ndim == 3 and not hasattr(hist["kernel"], "out_sharding")
