"""What the NNX and Linen versions share: the architecture's sizes and the metrics."""

from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp
import optax

NUM_CLASSES = 10
CONV_FEATURES = (32, 64)
HIDDEN = 128


def loss_and_accuracy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, jnp.mean(logits.argmax(-1) == labels)


class Trainer(Protocol):
  """One model with its optimizer, in either API flavour."""

  def train_step(self, x: Any, y: Any) -> tuple[jax.Array, jax.Array]:
    """One optimizer step on a batch; returns the batch's (loss, accuracy)."""

  def evaluate(self, x: Any, y: Any) -> tuple[jax.Array, jax.Array]:
    """(loss, accuracy) on a whole split, without training."""

  def tabulate(self, x: Any, width: int) -> str:
    """The model's summary table (layers, shapes, parameter counts) for inputs like ``x``."""

  def save(self, path: str) -> None:
    """Write a checkpoint with flaxen.checkpoint."""

  def restored(self, path: str) -> Trainer:
    """A new trainer whose model is a fresh one restored from ``path``."""
