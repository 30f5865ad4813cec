"""The classifier in the Linen flavour: a module template, TrainState, jax.jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import flaxen.linen as nn
from digits.common import CONV_FEATURES, HIDDEN, NUM_CLASSES, loss_and_accuracy
from flaxen import checkpoint
from flaxen.training.train_state import TrainState


class CNN(nn.Module):
  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c1, c2 = CONV_FEATURES
    x = nn.relu(nn.Conv(c1, (3, 3), name="conv1")(x))
    x = nn.avg_pool(nn.relu(nn.Conv(c2, (3, 3), name="conv2")(x)), (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(NUM_CLASSES, name="out")(nn.relu(nn.Dense(HIDDEN, name="hidden")(x)))


def create_state(seed: int, tx: optax.GradientTransformation) -> TrainState:
  model = CNN()
  params = model.init(jax.random.key(seed), jnp.zeros((1, 8, 8, 1)))["params"]
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


@jax.jit
def train_step(state: TrainState, x, y):
  def loss_fn(params):
    return loss_and_accuracy(state.apply_fn({"params": params}, x), y)

  (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads=grads), loss, acc


@jax.jit
def evaluate(state: TrainState, x, y):
  return loss_and_accuracy(state.apply_fn({"params": state.params}, x), y)


class LinenTrainer:
  def __init__(self, state: TrainState):
    self.state = state

  @classmethod
  def create(cls, seed: int, tx: optax.GradientTransformation) -> LinenTrainer:
    return cls(create_state(seed, tx))

  def train_step(self, x, y):
    self.state, loss, acc = train_step(self.state, x, y)
    return loss, acc

  def evaluate(self, x, y):
    return evaluate(self.state, x, y)

  def tabulate(self, x, width: int) -> str:
    return CNN().tabulate(jax.random.key(0), x, console_kwargs={"width": width})

  def save(self, path: str) -> None:
    checkpoint.save(path, self.state, force=True)  # params, optimizer state and step

  def restored(self, path: str) -> LinenTrainer:
    # jax.eval_shape gives the TrainState's structure without computing any array.
    target = jax.eval_shape(lambda: create_state(0, self.state.tx))
    return LinenTrainer(checkpoint.restore(path, target))
