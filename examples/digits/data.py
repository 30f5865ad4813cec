"""scikit-learn's 8x8 handwritten digits (shipped with the package, no download)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

# The split never depends on --seed, so test accuracies of different seeds are comparable.
SPLIT_SEED = 0
TEST_FRACTION = 0.2


class Split(NamedTuple):
  x: np.ndarray  # (n, 8, 8, 1) float32 in [0, 1], NHWC as flaxen's Conv expects
  y: np.ndarray  # (n,) int32 labels 0..9


def load() -> tuple[Split, Split]:
  """The (train, test) splits, stratified by label."""
  digits = load_digits()
  x = (digits.images / 16.0).astype(np.float32)[..., None]
  y = digits.target.astype(np.int32)
  x_train, x_test, y_train, y_test = train_test_split(
    x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
  return Split(x_train, y_train), Split(x_test, y_test)


def shift(x: np.ndarray, rng: np.random.Generator, max_shift: int = 1) -> np.ndarray:
  """Each image moved by up to ``max_shift`` pixels in each direction, zeros shifted in.

  1437 training images are few for 150k parameters; shifted copies keep the model from
  memorizing pixel positions (test accuracy about 97.5% without, 99% with, 5 seeds).
  """
  n, h, w, _ = x.shape
  padded = np.pad(x, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
  dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
  rows = (dy[:, None] + np.arange(h))[:, :, None]
  cols = (dx[:, None] + np.arange(w))[:, None, :]
  return padded[np.arange(n)[:, None, None], rows, cols]


def batches(split: Split, batch_size: int, rng: np.random.Generator) -> Iterator[Split]:
  """One shuffled, shifted epoch; the last partial batch is dropped so jit compiles one shape."""
  order = rng.permutation(len(split.y))
  for start in range(0, len(order) - batch_size + 1, batch_size):
    idx = order[start:start + batch_size]
    yield Split(shift(split.x[idx], rng), split.y[idx])


def steps_per_epoch(split: Split, batch_size: int) -> int:
  return len(split.y) // batch_size
