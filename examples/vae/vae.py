"""flaxen example: a variational autoencoder for scikit-learn's 8x8 digits, in Linen.

An MLP encoder (nn.Dense) maps each 64-pixel image to the mean and log-variance of a
Gaussian over a small latent space; a latent is drawn with the reparameterisation trick
(the noise comes from self.make_rng("noise")) and an MLP decoder maps it back to per-pixel
Bernoulli logits. Training maximises the ELBO with a jax.jit train step on a TrainState.
It prints the train and test ELBO (nats per image) after each epoch and writes a PNG with
test images, their reconstructions, and images decoded from latents drawn from the prior.

    python examples/vae/vae.py
    python examples/vae/vae.py --epochs 20 --latent 2
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
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import flaxen.linen as nn
from flaxen.training.train_state import TrainState


@dataclass
class Result:
  train_elbo: list[float]  # per epoch, mean over the epoch's batches
  test_elbo: list[float]  # per epoch, on the whole test split
  plot: Path
  train_seconds: float


def load(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) images flattened to (n, 64), scaled to [0, 1]; an 80/20 split."""
  x = (load_digits().data / 16.0).astype(np.float32)
  train, test = train_test_split(x, test_size=0.2, random_state=seed)
  return train, test


class Encoder(nn.Module):
  hidden: int
  latent: int

  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.Dense(self.hidden, name="hidden1")(x))
    h = nn.relu(nn.Dense(self.hidden, name="hidden2")(h))
    return nn.Dense(self.latent, name="mean")(h), nn.Dense(self.latent, name="logvar")(h)


class Decoder(nn.Module):
  hidden: int
  pixels: int = 64

  @nn.compact
  def __call__(self, z):
    h = nn.relu(nn.Dense(self.hidden, name="hidden1")(z))
    h = nn.relu(nn.Dense(self.hidden, name="hidden2")(h))
    return nn.Dense(self.pixels, name="logits")(h)


class VAE(nn.Module):
  hidden: int = 256
  latent: int = 8

  def setup(self):
    self.encoder = Encoder(self.hidden, self.latent)
    self.decoder = Decoder(self.hidden)

  def __call__(self, x):
    """(pixel logits, mean, logvar) of a reconstruction through one sampled latent."""
    mean, logvar = self.encoder(x)
    eps = jax.random.normal(self.make_rng("noise"), mean.shape)
    z = mean + jnp.exp(0.5 * logvar) * eps
    return self.decoder(z), mean, logvar

  def reconstruct(self, x):
    """Pixel probabilities decoded from the posterior mean (no noise)."""
    return nn.sigmoid(self.decoder(self.encoder(x)[0]))

  def generate(self, z):
    return nn.sigmoid(self.decoder(z))


def elbo(logits, mean, logvar, x):
  """Per-image ELBO: Bernoulli log-likelihood of x minus KL(q(z|x) || N(0, I)), in nats."""
  log_lik = -optax.sigmoid_binary_cross_entropy(logits, x).sum(-1)
  kl = 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)
  return log_lik - kl


@jax.jit
def train_step(state: TrainState, x, key):
  def loss_fn(params):
    out = state.apply_fn({"params": params}, x, rngs={"noise": key})
    return -elbo(*out, x).mean()

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), -loss


@jax.jit
def evaluate(state: TrainState, x, key):
  return elbo(*state.apply_fn({"params": state.params}, x, rngs={"noise": key}), x).mean()


def plot(state: TrainState, test: np.ndarray, latent: int, path: Path, seed: int,
         title: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  n = 10
  originals = test[:n]
  recons = state.apply_fn({"params": state.params}, originals, method=VAE.reconstruct)
  z = jax.random.normal(jax.random.key(seed + 1), (2 * n, latent))
  samples = state.apply_fn({"params": state.params}, z, method=VAE.generate)
  rows = [("test image", originals), ("reconstruction", recons),
          ("sample", samples[:n]), ("sample", samples[n:])]
  fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 1.0))
  for r, (label, images) in enumerate(rows):
    for c in range(n):
      ax = axes[r, c]
      ax.imshow(np.asarray(images[c]).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
      ax.set_xticks([])
      ax.set_yticks([])
    axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    description=__doc__.split("\n\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--epochs", type=int, default=100, help="passes over the training set")
  parser.add_argument("--batch-size", type=int, default=64, help="images per optimizer step")
  parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's step")
  parser.add_argument("--latent", type=int, default=8, help="size of the latent space")
  parser.add_argument("--hidden", type=int, default=256, help="width of the hidden layers")
  parser.add_argument("--seed", type=int, default=0,
                      help="seeds initialization, batch order and noise (the split is fixed)")
  parser.add_argument("--output-dir", type=Path, default=Path("out/vae"),
                      help="where the PNG goes; created if missing")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> Result:
  args = parse_args(argv)
  console = console or Console()
  out = args.output_dir.absolute()
  out.mkdir(parents=True, exist_ok=True)
  train, test = load()
  console.print(f"digits: {len(train)} train / {len(test)} test images of 8x8; "
                f"latent {args.latent}, hidden {args.hidden}, seed {args.seed}")

  # Pixels are gray levels, not 0/1, so even a perfect decoder's Bernoulli log-likelihood is
  # minus the pixels' own entropy: the ELBO's ceiling.
  p = np.clip(test, 1e-6, 1 - 1e-6)
  ceiling = float(np.mean(np.sum(p * np.log(p) + (1 - p) * np.log(1 - p), -1)))
  console.print(f"ELBO ceiling on the test split (pixel entropy): {ceiling:.2f} nats/image")

  model = VAE(hidden=args.hidden, latent=args.latent)
  key = jax.random.key(args.seed)
  key, init_key, noise_key = jax.random.split(key, 3)
  params = model.init({"params": init_key, "noise": noise_key}, train[:1])["params"]
  state = TrainState.create(apply_fn=model.apply, params=params,
                            tx=optax.adam(args.learning_rate))
  rng = np.random.default_rng(args.seed)
  steps = len(train) // args.batch_size  # the last partial batch is dropped: one jit shape
  train_elbo, test_elbo = [], []
  start = time.perf_counter()
  for epoch in range(1, args.epochs + 1):
    order = rng.permutation(len(train))
    batch_elbo = []
    for i in range(steps):
      key, sub = jax.random.split(key)
      state, value = train_step(state, train[order[i * args.batch_size:(i + 1) * args.batch_size]],
                                sub)
      batch_elbo.append(value)
    key, sub = jax.random.split(key)
    train_elbo.append(float(np.mean(jax.device_get(batch_elbo))))
    test_elbo.append(float(evaluate(state, test, sub)))
    console.print(f"epoch {epoch:3d}  ELBO train {train_elbo[-1]:8.2f}  "
                  f"test {test_elbo[-1]:8.2f} nats/image")
  seconds = time.perf_counter() - start
  console.print(f"trained {args.epochs} epochs ({args.epochs * steps} steps) in {seconds:.1f} s")

  path = out / "vae_digits.png"
  plot(state, test, args.latent, path, args.seed,
       f"flaxen Linen VAE, 8x8 digits: test ELBO {test_elbo[-1]:.1f} nats/image")
  console.print(f"reconstructions and samples: {path}")
  return Result(train_elbo, test_elbo, path, seconds)


if __name__ == "__main__":
  main(sys.argv[1:])
