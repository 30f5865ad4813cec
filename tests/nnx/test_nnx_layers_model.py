"""A Flax-tutorial-style NNX model (Conv, pooling, BatchNorm, Dropout, Linear) trained with
nnx.Optimizer and tracked with nnx.MultiMetric: the layers working together under nnx.jit."""

from functools import partial

import jax.numpy as jnp
import numpy as np
import optax

from flaxen import nnx


class CNN(nnx.Module):
  def __init__(self, *, rngs: nnx.Rngs):
    self.conv = nnx.Conv(1, 4, kernel_size=(3, 3), rngs=rngs)
    self.bn = nnx.BatchNorm(4, rngs=rngs)
    self.pool = partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
    self.dropout = nnx.Dropout(0.2, rngs=rngs)
    self.linear = nnx.Linear(4 * 4 * 4, 3, rngs=rngs)

  def __call__(self, x):
    x = self.pool(nnx.relu(self.bn(self.conv(x))))
    x = self.dropout(x.reshape(x.shape[0], -1))
    return self.linear(x)


def test_tutorial_cnn_trains_and_evaluates():
  rng = np.random.default_rng(0)
  images = rng.normal(size=(16, 8, 8, 1)).astype(np.float32)
  labels = (images.mean((1, 2, 3)) > 0).astype(np.int32)
  model = CNN(rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
  metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average("loss"))

  def loss_fn(model, x, y):
    logits = model(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits

  @nnx.jit
  def train_step(model, optimizer, metrics, x, y):
    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, y)
    metrics.update(loss=loss, logits=logits, labels=y)
    optimizer.update(model, grads)

  @nnx.jit
  def eval_step(model, metrics, x, y):
    loss, logits = loss_fn(model, x, y)
    metrics.update(loss=loss, logits=logits, labels=y)

  model.train()
  losses = []
  for _ in range(15):
    train_step(model, optimizer, metrics, images, labels)
    losses.append(float(metrics.compute()["loss"]))
    metrics.reset()
  assert losses[-1] < losses[0]
  assert float(jnp.abs(model.bn.mean.value).sum()) > 0  # running stats moved
  model.eval()
  assert model.dropout.deterministic and model.bn.use_running_average
  eval_step(model, metrics, images, labels)
  eval_step(model, metrics, images, labels)  # deterministic: the same numbers twice
  out = metrics.compute()
  assert 0.0 <= float(out["accuracy"]) <= 1.0 and np.isfinite(float(out["loss"]))
