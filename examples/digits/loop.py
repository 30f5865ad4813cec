"""The training loop both flavours run, with a rich progress bar."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from digits import data
from digits.common import Trainer


@dataclass
class History:
  """Per-epoch curves; train values are means over the epoch's steps."""

  train_loss: list[float] = field(default_factory=list)
  train_accuracy: list[float] = field(default_factory=list)
  test_loss: list[float] = field(default_factory=list)
  test_accuracy: list[float] = field(default_factory=list)


def fit(trainer: Trainer, train: data.Split, test: data.Split, *, epochs: int, batch_size: int,
        seed: int, console: Console) -> History:
  rng = np.random.default_rng(seed)
  history = History()
  columns = (
    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
    TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}  "
               "test acc {task.fields[test_acc]:.3f}"), TimeElapsedColumn(),
  )
  total = epochs * data.steps_per_epoch(train, batch_size)
  with Progress(*columns, console=console) as progress:
    nan = float("nan")
    task = progress.add_task("epoch 1", total=total, loss=nan, acc=nan, test_acc=nan)
    for epoch in range(1, epochs + 1):
      losses, accs = [], []
      for batch in data.batches(train, batch_size, rng):
        loss, acc = trainer.train_step(batch.x, batch.y)
        losses.append(float(loss))
        accs.append(float(acc))
        # Running means over the epoch: a single batch's values jump around too much to read.
        progress.update(task, advance=1, description=f"epoch {epoch}/{epochs}",
                        loss=np.mean(losses), acc=np.mean(accs))
      test_loss, test_acc = trainer.evaluate(test.x, test.y)
      history.train_loss.append(float(np.mean(losses)))
      history.train_accuracy.append(float(np.mean(accs)))
      history.test_loss.append(float(test_loss))
      history.test_accuracy.append(float(test_acc))
      progress.update(task, test_acc=history.test_accuracy[-1])
  return history
