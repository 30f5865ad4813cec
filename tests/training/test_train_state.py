"""TrainState: create, apply_gradients, and use as a jit argument."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import flaxen.linen as nn
from flaxen.training.train_state import TrainState


class MLP(nn.Module):
  features: list  # a list attribute, as ported programs often have

  @nn.compact
  def __call__(self, x):
    for i, f in enumerate(self.features):
      w = self.param(f"w{i}", jax.nn.initializers.lecun_normal(), (x.shape[-1], f))
      x = jnp.tanh(x @ w)
    return x


def test_create_and_apply_gradients_match_manual_sgd():
  params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
  state = TrainState.create(apply_fn=None, params=params, tx=optax.sgd(0.1))
  assert state.step == 0
  grads = {"w": jnp.array([0.5, 1.0]), "b": jnp.array(-1.0)}
  new = state.apply_gradients(grads=grads)
  assert int(new.step) == 1
  np.testing.assert_allclose(new.params["w"], [0.95, -2.1])
  np.testing.assert_allclose(new.params["b"], 0.6)
  assert state.params is params  # the old state is unchanged


def test_extra_fields_and_jitted_train_step():
  class State(TrainState):
    batch_stats: dict

  model = MLP([4, 1])
  x = jnp.linspace(-1, 1, 6).reshape(3, 2)
  y = jnp.ones((3, 1))
  params = model.init(jax.random.key(0), x)["params"]
  state = State.create(apply_fn=model.apply, params=params, tx=optax.adam(1e-2),
                       batch_stats={"n": jnp.zeros(())})

  @jax.jit
  def step(state):
    def loss(p):
      return jnp.mean((state.apply_fn({"params": p}, x) - y) ** 2)

    value, grads = jax.value_and_grad(loss)(state.params)
    return state.apply_gradients(grads=grads, batch_stats={"n": state.batch_stats["n"] + 1}), value

  losses = []
  for _ in range(5):
    state, value = step(state)
    losses.append(float(value))
  assert int(state.step) == 5 and float(state.batch_stats["n"]) == 5.0
  assert losses[-1] < losses[0]
  leaves = jax.tree.leaves(state)
  assert all(isinstance(leaf, jax.Array) for leaf in leaves)  # apply_fn and tx are static
