"""flaxen demo: train a small MLP classifier whose whole training state is a struct dataclass.

Two Gaussian-blob classes in 2-D, a 2-16-2 MLP, optax Adam, one jitted train step that
takes and returns a `flaxen.struct.PyTreeNode`. The state is saved with
`flaxen.serialization.to_bytes`, restored into a fresh template, and checked equal.

    python examples/demo.py --steps 300 --lr 0.05 --seed 0
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flaxen import serialization, struct


class TrainState(struct.PyTreeNode):
  step: jax.Array
  params: dict
  opt_state: Any
  tx: optax.GradientTransformation = struct.field(pytree_node=False)
  apply_fn: Callable = struct.field(pytree_node=False)

  @classmethod
  def create(cls, params, tx, apply_fn):
    return cls(jnp.zeros((), jnp.int32), params, tx.init(params), tx, apply_fn)

  def apply_gradients(self, grads):
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state)


def init_mlp(key, sizes=(2, 16, 2)):
  keys = jax.random.split(key, len(sizes) - 1)
  shapes = zip(sizes[:-1], sizes[1:], strict=True)
  return [
    {"w": jax.random.normal(k, (n_in, n_out)) / np.sqrt(n_in), "b": jnp.zeros(n_out)}
    for k, (n_in, n_out) in zip(keys, shapes, strict=True)
  ]


def mlp(params, x):
  for layer in params[:-1]:
    x = jax.nn.relu(x @ layer["w"] + layer["b"])
  return x @ params[-1]["w"] + params[-1]["b"]


def make_data(key, n=512):
  k1, k2 = jax.random.split(key)
  labels = jax.random.bernoulli(k1, 0.5, (n,)).astype(jnp.int32)
  centers = jnp.array([[-1.0, -1.0], [1.0, 1.0]])
  return centers[labels] + 0.7 * jax.random.normal(k2, (n, 2)), labels


@jax.jit
def train_step(state: TrainState, x, y):
  def loss_fn(params):
    logits = state.apply_fn(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), loss


def accuracy(state: TrainState, x, y) -> float:
  return float((state.apply_fn(state.params, x).argmax(-1) == y).mean())


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
  parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default 0.05)")
  parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  args = parser.parse_args()

  data_key, test_key, init_key = jax.random.split(jax.random.key(args.seed), 3)
  x, y = make_data(data_key)
  x_test, y_test = make_data(test_key)
  state = TrainState.create(init_mlp(init_key), optax.adam(args.lr), mlp)
  for step in range(1, args.steps + 1):
    state, loss = train_step(state, x, y)
    if step % 100 == 0 or step == 1:
      print(f"step {step:4d}  loss {float(loss):.4f}")
  acc = accuracy(state, x_test, y_test)
  print(f"test accuracy {acc:.3f}")

  path = Path(tempfile.mkdtemp()) / "state.msgpack"
  path.write_bytes(serialization.to_bytes(state))
  template = TrainState.create(init_mlp(jax.random.key(1)), optax.adam(args.lr), mlp)
  restored = serialization.from_bytes(template, path.read_bytes())
  assert int(restored.step) == args.steps
  assert accuracy(restored, x_test, y_test) == acc
  print(f"saved to {path} ({path.stat().st_size} bytes), restored, same accuracy")


if __name__ == "__main__":
  main()
