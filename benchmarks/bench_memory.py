"""Peak memory of a donated ``nnx.jit`` Adam step against the size of the state it updates.

An MLP of 16 square Linear layers holding about ``FLAXEN_BENCH_MEMORY_MIB`` MiB of
parameters (default 1024) trains with optax Adam; the state the step updates is the
parameters plus Adam's two moments (3x the parameters) and the step counts. Each variant
runs in its own subprocess on the CPU backend. The figure is the state's size plus what
the steps add: the process's peak RSS (``resource.getrusage``) after the steps minus its
RSS just before the first step (compilation included). malloc is told to map every buffer
over 1 MiB on its own, so freed buffers leave RSS and it tracks live memory. With
``donate_argnums`` the step may update the state in place, so its peak should stay close to
the state itself (the performance issue's target: 1.3x); without donation the new state is
written next to the old one. Quick run: ``python -m benchmarks.bench_memory --mib 128``
(needs about 10x the size in free memory for the variant without donation); below that the
fixed cost of compiling the step (about 30 MiB of RSS) dominates the ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

from benchmarks.timing import Result

LAYERS, BATCH, STEPS = 16, 8, 3


def _rss() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(mib: int, donate: bool) -> dict:
  """Builds the model, runs the step a few times, returns the byte counts."""
  import resource

  import jax
  import jax.numpy as jnp
  import optax

  from flaxen import nnx

  width = int(math.sqrt(mib * 2**20 / 4 / LAYERS))

  class Stack(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
      self.layers = [nnx.Linear(width, width, rngs=rngs) for _ in range(LAYERS)]

    def __call__(self, x):
      for layer in self.layers:
        x = jax.nn.relu(layer(x))
      return x

  model = Stack(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
  state = nnx.state((model, optimizer))
  state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
  del state

  def train_step(model, optimizer, x):
    loss, grads = nnx.value_and_grad(lambda m: jnp.mean(m(x) ** 2))(model)
    optimizer.update(model, grads)
    return loss

  step = nnx.jit(train_step, donate_argnums=(0, 1) if donate else None)
  x = jnp.ones((BATCH, width))
  before = _rss()
  for _ in range(STEPS):
    jax.block_until_ready(step(model, optimizer, x))
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
  return {"state": state_bytes, "peak": state_bytes + max(0, peak - before), "width": width}


def measure(mib: int, donate: bool) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", MALLOC_MMAP_THRESHOLD_=str(2**20),
             MALLOC_TRIM_THRESHOLD_=str(2**20))
  out = subprocess.run(
    [sys.executable, "-m", "benchmarks.bench_memory", "--child", "--mib", str(mib),
     *(["--donate"] if donate else [])],
    env=env, capture_output=True, text=True, check=True,
    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return json.loads(out.stdout.strip().splitlines()[-1])


def run(mib: int | None = None) -> list[Result]:
  mib = mib or int(os.environ.get("FLAXEN_BENCH_MEMORY_MIB", "1024"))
  rows = []
  for donate in (True, False):
    m = measure(mib, donate)
    label = "donated" if donate else "not donated"
    rows.append(Result(
      f"memory: Adam step, {mib} MiB params, {label}", m["peak"], m["state"],
      target=1.3 if donate else None, unit="peak RSS vs state (params + Adam moments)",
      notes=f"{LAYERS} Linear {m['width']}x{m['width']}, batch {BATCH}, CPU",
      quantity="memory"))
  return rows


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mib", type=int, default=None, help="parameter MiB (default 1024)")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--donate", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    print(json.dumps(child(args.mib, args.donate)))
    return
  for r in run(args.mib):
    print(f"{r.name}: peak {r.flaxen_s / 2**20:.0f} MiB, state {r.reference_s / 2**20:.0f} "
          f"MiB, {r.ratio:.2f}x (target {r.target or '-'})")


if __name__ == "__main__":
  main(sys.argv[1:])
