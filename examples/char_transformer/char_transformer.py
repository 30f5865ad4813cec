"""flaxen example: a character-level Transformer language model in NNX.

Trains a small decoder-only Transformer (token and position embeddings, pre-LayerNorm blocks
of causal nnx.MultiHeadAttention and an MLP) on a fixed snapshot of flaxen's own docs
(flaxen_docs.txt, next to this file; --text picks another file), with nnx.Optimizer (optax
adamw) and an nnx.jit train step.
It prints the loss periodically, then samples text from a prompt with a temperature, one
character at a time through the attention layers' decode cache.

    python examples/char_transformer/char_transformer.py
    python examples/char_transformer/char_transformer.py --steps 300 --prompt "## "
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flaxen import nnx

# A snapshot of README.md, docs/getting_started.md and docs/design.md, taken once: training
# on the live docs made the loss (and the slow test's threshold) drift as the docs grew.
DEFAULT_TEXT = Path(__file__).resolve().parent / "flaxen_docs.txt"


@dataclass
class Result:
  losses: list[tuple[int, float]]  # (step, mean training loss since the previous report)
  sample: str
  sample_path: Path
  train_seconds: float


def load_text(path: Path = DEFAULT_TEXT) -> str:
  """The training text: by default the docs snapshot shipped with the example."""
  return path.read_text(encoding="utf-8")


class Vocab:
  """Characters <-> integer ids; unknown characters of a prompt map to a space."""

  def __init__(self, text: str):
    self.chars = sorted(set(text))
    self.index = {c: i for i, c in enumerate(self.chars)}

  def encode(self, text: str) -> np.ndarray:
    space = self.index.get(" ", 0)
    return np.array([self.index.get(c, space) for c in text], np.int32)

  def decode(self, ids: Sequence[int]) -> str:
    return "".join(self.chars[i] for i in ids)


class Block(nnx.Module):
  """x + attn(ln(x)), then x + mlp(ln(x))."""

  def __init__(self, dim: int, heads: int, rngs: nnx.Rngs):
    self.ln1 = nnx.LayerNorm(dim, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(heads, dim, decode=False, rngs=rngs)
    self.ln2 = nnx.LayerNorm(dim, rngs=rngs)
    self.up = nnx.Linear(dim, 4 * dim, rngs=rngs)
    self.down = nnx.Linear(4 * dim, dim, rngs=rngs)

  def __call__(self, x, mask, decode: bool):
    x = x + self.attn(self.ln1(x), mask=mask, decode=decode)
    return x + self.down(nnx.gelu(self.up(self.ln2(x))))


class CharTransformer(nnx.Module):
  def __init__(self, vocab_size: int, context: int, *, dim: int = 128, heads: int = 4,
               layers: int = 3, rngs: nnx.Rngs):
    self.context = context
    self.tokens = nnx.Embed(vocab_size, dim, rngs=rngs)
    self.positions = nnx.Embed(context, dim, rngs=rngs)
    self.blocks = nnx.List([Block(dim, heads, rngs) for _ in range(layers)])
    self.ln = nnx.LayerNorm(dim, rngs=rngs)
    self.head = nnx.Linear(dim, vocab_size, rngs=rngs)

  def __call__(self, ids, start=0, decode: bool = False):
    """Logits ``(batch, length, vocab)`` for ids ``(batch, length)`` at positions
    ``start, start + 1, ...``. With ``decode``, one position per call through the caches."""
    pos = start + jnp.arange(ids.shape[1])
    x = self.tokens(ids) + self.positions(pos)[None]
    mask = None if decode else nnx.make_causal_mask(ids)
    for block in self.blocks:
      x = block(x, mask, decode)
    return self.head(self.ln(x))

  def init_cache(self, batch: int) -> None:
    for block in self.blocks:
      block.attn.init_cache((batch, self.context, block.attn.in_features))


def loss_fn(model: CharTransformer, x, y):
  return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def train_step(model: CharTransformer, optimizer: nnx.Optimizer, x, y):
  loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
  optimizer.update(model, grads)
  return loss


@nnx.jit
def decode_step(model: CharTransformer, token, pos, key, temperature):
  """Feeds one token (batch, 1) at position ``pos``; samples the next from its logits."""
  logits = model(token, start=pos, decode=True)[:, -1]
  return jax.random.categorical(key, logits / temperature)


def sample(model: CharTransformer, vocab: Vocab, prompt: str, length: int, temperature: float,
           seed: int) -> str:
  """``prompt`` followed by ``length`` sampled characters.

  The positions only go up to ``context``: when the cache is full it is cleared and the
  last ``context // 2`` characters are fed again, so the model always sees at least half
  a window of history.
  """
  ids = list(vocab.encode(prompt)) or [vocab.index.get("\n", 0)]
  key = jax.random.key(seed)
  temperature = jnp.float32(temperature)
  context = model.context
  history = ids[-context:]
  model.init_cache(1)
  pos, nxt = 0, None
  for t in history:  # prefill, one position at a time
    key, sub = jax.random.split(key)
    nxt = decode_step(model, jnp.array([[t]]), pos, sub, temperature)
    pos += 1
  out = list(ids)
  for _ in range(length):
    token = int(nxt[0])
    out.append(token)
    if pos == context:
      model.init_cache(1)
      pos = 0
      for t in out[-context // 2:-1]:
        key, sub = jax.random.split(key)
        decode_step(model, jnp.array([[t]]), pos, sub, temperature)
        pos += 1
    key, sub = jax.random.split(key)
    nxt = decode_step(model, jnp.array([[token]]), pos, sub, temperature)
    pos += 1
  return vocab.decode(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    description=__doc__.split("\n\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--steps", type=int, default=1000, help="optimizer steps")
  parser.add_argument("--batch-size", type=int, default=32, help="sequences per step")
  parser.add_argument("--context", type=int, default=64, help="characters per sequence")
  parser.add_argument("--dim", type=int, default=64, help="embedding width")
  parser.add_argument("--layers", type=int, default=3, help="Transformer blocks")
  parser.add_argument("--learning-rate", type=float, default=3e-3,
                      help="adamw's peak step (warmup, then cosine decay)")
  parser.add_argument("--seed", type=int, default=0, help="seeds initialization, batches, sampling")
  parser.add_argument("--prompt", default="flaxen ", help="text the sample continues")
  parser.add_argument("--sample-length", type=int, default=300, help="characters to sample")
  parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
  parser.add_argument("--log-every", type=int, default=100, help="steps between loss reports")
  parser.add_argument("--text", type=Path, default=DEFAULT_TEXT,
                      help="UTF-8 text file to train on")
  parser.add_argument("--output-dir", type=Path, default=Path("out/char_transformer"),
                      help="where the sample is written; created if missing")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> Result:
  args = parse_args(argv)
  console = console or Console()
  out = args.output_dir.absolute()
  out.mkdir(parents=True, exist_ok=True)

  text = load_text(args.text)
  vocab = Vocab(text)
  data = vocab.encode(text)
  console.print(f"text: {len(data):,} characters of {args.text.name}, "
                f"{len(vocab.chars)} distinct")
  model = CharTransformer(len(vocab.chars), args.context, dim=args.dim, layers=args.layers,
                          rngs=nnx.Rngs(args.seed))
  n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  console.print(f"model: {len(model.blocks)} blocks, {n_params:,} parameters, "
                f"context {args.context}")
  schedule = optax.warmup_cosine_decay_schedule(
    0.0, args.learning_rate, min(100, args.steps // 10 + 1), max(args.steps, 2))
  optimizer = nnx.Optimizer(model, optax.adamw(schedule, weight_decay=0.01), wrt=nnx.Param)

  rng = np.random.default_rng(args.seed)
  offsets = np.arange(args.context + 1)
  losses, window = [], []
  columns = (TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
             TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn())
  start = time.perf_counter()
  with Progress(*columns, console=console) as progress:
    task = progress.add_task("train", total=args.steps, loss=float("nan"))
    for step in range(1, args.steps + 1):
      starts = rng.integers(0, len(data) - args.context - 1, args.batch_size)
      chunk = data[starts[:, None] + offsets]
      window.append(train_step(model, optimizer, chunk[:, :-1], chunk[:, 1:]))
      if step % args.log_every == 0 or step == args.steps:
        mean = float(np.mean(jax.device_get(window)))
        losses.append((step, mean))
        window = []
        progress.console.print(f"step {step:5d}  loss {mean:.3f}")
        progress.update(task, loss=mean)
      progress.advance(task)
  seconds = time.perf_counter() - start
  console.print(f"trained {args.steps} steps in {seconds:.1f} s "
                f"(uniform guess: loss {np.log(len(vocab.chars)):.3f})")

  start = time.perf_counter()
  text_out = sample(model, vocab, args.prompt, args.sample_length, args.temperature, args.seed)
  console.print(f"sampled {args.sample_length} characters in {time.perf_counter() - start:.1f} s "
                f"(temperature {args.temperature}, decode cache):")
  console.rule()
  console.print(text_out, markup=False, highlight=False)
  console.rule()
  path = out / "sample.txt"
  path.write_text(text_out, encoding="utf-8")
  console.print(f"sample written to {path}")
  return Result(losses, text_out, path, seconds)


if __name__ == "__main__":
  main(sys.argv[1:])
