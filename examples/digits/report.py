"""What the demo shows besides the progress bar: the parameter table and the curves' plot."""

from __future__ import annotations

from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
from rich.table import Table  # noqa: E402

from digits.loop import History  # noqa: E402


def param_table(params: dict, title: str) -> Table:
  table = Table(title=title, show_footer=True)
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  total = sum(leaf.size for _, leaf in leaves)
  table.add_column("path", footer="total")
  table.add_column("shape")
  table.add_column("count", justify="right", footer=f"{total:,}")
  for path, leaf in leaves:
    table.add_row("/".join(str(k.key) for k in path), str(tuple(leaf.shape)), f"{leaf.size:,}")
  return table


def plot(history: History, path: Path, title: str) -> None:
  epochs = range(1, len(history.train_loss) + 1)
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
  ax_loss.plot(epochs, history.train_loss, "o-", label="train")
  ax_loss.plot(epochs, history.test_loss, "s-", label="test")
  ax_loss.set(title="cross-entropy loss", xlabel="epoch", yscale="log")
  ax_acc.plot(epochs, history.train_accuracy, "o-", label="train")
  ax_acc.plot(epochs, history.test_accuracy, "s-", label="test")
  ax_acc.set(title="accuracy", xlabel="epoch")
  for ax in (ax_loss, ax_acc):
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(title)
  fig.savefig(path, dpi=100)
  plt.close(fig)
