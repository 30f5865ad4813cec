"""The classifier in the NNX flavour: a stateful module, nnx.Optimizer, nnx.jit."""

from __future__ import annotations

import jax
import optax

from digits.common import CONV_FEATURES, HIDDEN, NUM_CLASSES, loss_and_accuracy
from flaxen import checkpoint, nnx


class CNN(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    c1, c2 = CONV_FEATURES
    self.conv1 = nnx.Conv(1, c1, (3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(c1, c2, (3, 3), rngs=rngs)
    self.hidden = nnx.Linear(4 * 4 * c2, HIDDEN, rngs=rngs)
    self.out = nnx.Linear(HIDDEN, NUM_CLASSES, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.conv1(x))
    x = nnx.avg_pool(nnx.relu(self.conv2(x)), (2, 2), strides=(2, 2))  # 8x8 -> 4x4
    x = x.reshape(x.shape[0], -1)
    return self.out(nnx.relu(self.hidden(x)))


@nnx.jit
def train_step(model: CNN, optimizer: nnx.Optimizer, x, y):
  (loss, acc), grads = nnx.value_and_grad(
    lambda m: loss_and_accuracy(m(x), y), has_aux=True)(model)
  optimizer.update(model, grads)
  return loss, acc


@nnx.jit
def evaluate(model: CNN, x, y):
  return loss_and_accuracy(model(x), y)


class NnxTrainer:
  def __init__(self, model: CNN, tx: optax.GradientTransformation):
    self.model, self.tx = model, tx
    self.optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  @classmethod
  def create(cls, seed: int, tx: optax.GradientTransformation) -> NnxTrainer:
    return cls(CNN(nnx.Rngs(seed)), tx)

  def train_step(self, x, y):
    return train_step(self.model, self.optimizer, x, y)

  def evaluate(self, x, y):
    return evaluate(self.model, x, y)

  def tabulate(self, x, width: int) -> str:
    return nnx.tabulate(self.model, x, console_kwargs={"width": width})

  def save(self, path: str) -> None:
    checkpoint.save(path, nnx.state(self.model), force=True)

  def restored(self, path: str) -> NnxTrainer:
    # An abstract model allocates no arrays; the checkpoint fills in its state.
    model = nnx.eval_shape(lambda: CNN(nnx.Rngs(0)))
    nnx.update(model, checkpoint.restore(path, nnx.state(model)))
    return NnxTrainer(model, self.tx)
