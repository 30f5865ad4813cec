"""The plot of the loss and accuracy curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from digits.loop import History  # noqa: E402

# Train values are means over each epoch's steps on shifted images, so they trail the test's.
TRAIN_LABEL = "train (epoch mean, shifted images)"


def plot(history: History, path: Path, title: str) -> None:
  epochs = range(1, len(history.train_loss) + 1)
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
  ax_loss.plot(epochs, history.train_loss, "o-", label=TRAIN_LABEL)
  ax_loss.plot(epochs, history.test_loss, "s-", label="test")
  ax_loss.set(title="cross-entropy loss", xlabel="epoch", yscale="log")
  ax_acc.plot(epochs, history.train_accuracy, "o-", label=TRAIN_LABEL)
  ax_acc.plot(epochs, history.test_accuracy, "s-", label="test")
  ax_acc.set(title="accuracy", xlabel="epoch")
  for ax in (ax_loss, ax_acc):
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
  fig.suptitle(title)
  fig.savefig(path, dpi=100)
  plt.close(fig)
