"""flaxen demo: a small convolutional classifier for scikit-learn's 8x8 handwritten digits.

Trains the same CNN (two 3x3 convolutions, average pooling, two dense layers) in the API
flavour chosen with --api: NNX (a stateful module, nnx.Optimizer, nnx.jit and
nnx.value_and_grad) or Linen (a module template, TrainState, jax.jit). It prints the
parameter table, shows a progress bar with the running loss and accuracy, prints the test
accuracy, saves a checkpoint with flaxen.checkpoint, restores it into a fresh model and
checks that model's test accuracy is the same, and writes a plot of the loss and accuracy
curves. Training images are shifted by up to one pixel at random; Adam's step decays to 0
along a cosine. The train/test split (80/20, stratified) is the same for every --seed.

    python examples/demo.py                       # NNX, default settings
    python examples/demo.py --api linen --epochs 5
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optax
from rich.console import Console

from digits import data, report
from digits.common import Trainer
from digits.loop import History, fit


@dataclass
class Result:
  test_accuracy: float
  restored_accuracy: float
  checkpoint: Path
  plot: Path
  history: History


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    description=__doc__.split("\n\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--api", choices=("nnx", "linen"), default="nnx",
                      help="which flaxen API trains the model")
  parser.add_argument("--epochs", type=int, default=10, help="passes over the training set")
  parser.add_argument("--batch-size", type=int, default=32, help="examples per optimizer step")
  parser.add_argument("--learning-rate", type=float, default=3e-3,
                      help="Adam's initial learning rate, decayed to 0 along a cosine")
  parser.add_argument("--seed", type=int, default=0,
                      help="seeds the parameter initialization and the batch order")
  parser.add_argument("--output-dir", type=Path, default=Path("out/demo"),
                      help="where the checkpoint and the plot go; created if missing")
  return parser.parse_args(argv)


def make_trainer(api: str, seed: int, tx: optax.GradientTransformation) -> Trainer:
  # Imported here so that each flavour's module loads only when it is used.
  if api == "nnx":
    from digits.nnx_model import NnxTrainer
    return NnxTrainer.create(seed, tx)
  from digits.linen_model import LinenTrainer
  return LinenTrainer.create(seed, tx)


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> Result:
  args = parse_args(argv)
  console = console or Console()
  out = args.output_dir.absolute()
  out.mkdir(parents=True, exist_ok=True)
  train, test = data.load()
  console.print(f"digits: {len(train.y)} train / {len(test.y)} test images of 8x8, "
                f"API {args.api}, seed {args.seed}")

  # Decaying the step to 0 over the run steadies the last epochs' test accuracy.
  total_steps = args.epochs * data.steps_per_epoch(train, args.batch_size)
  tx = optax.adam(optax.cosine_decay_schedule(args.learning_rate, total_steps))
  trainer = make_trainer(args.api, args.seed, tx)
  # The table comes as text already laid out for our console's width.
  table = trainer.tabulate(test.x[:1], console.width)
  console.print(table, markup=False, highlight=False, soft_wrap=True)
  start = time.perf_counter()
  history = fit(trainer, train, test, epochs=args.epochs, batch_size=args.batch_size,
                seed=args.seed, console=console)
  accuracy = float(trainer.evaluate(test.x, test.y)[1])
  console.print(f"trained in {time.perf_counter() - start:.1f} s; "
                f"test accuracy [bold]{accuracy:.2%}[/bold]")

  ckpt = out / f"checkpoint_{args.api}"
  trainer.save(str(ckpt))
  restored = float(trainer.restored(str(ckpt)).evaluate(test.x, test.y)[1])
  if restored != accuracy:
    raise AssertionError(f"restored model's test accuracy {restored} != {accuracy}")
  console.print(f"checkpoint {ckpt} restored into a fresh model: same test accuracy")

  plot = out / f"curves_{args.api}.png"
  report.plot(history, plot, f"flaxen {args.api}: 8x8 digits CNN, test accuracy {accuracy:.2%}")
  console.print(f"loss and accuracy curves: {plot}")
  return Result(accuracy, restored, ckpt, plot, history)


if __name__ == "__main__":
  main(sys.argv[1:])
