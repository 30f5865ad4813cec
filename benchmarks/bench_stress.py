"""10,000 stateful ``nnx.jit`` train steps: Python memory must not grow.

Model (a) of bench_nnx (MLP 16-32-32-4, batch 8, SGD) trains with the module and optimizer
passed to one ``nnx.jit`` function; every 1,000 steps the model and optimizer are replaced
by fresh ones, as a program that rebuilds its model would. Python allocations are traced
(``tracemalloc``, started before the model is built) and compared at the end with a
snapshot after a 1,000-step warm-up:

- the target row counts what flaxen's own code allocated (the innermost frame in
  ``src/flaxen``; target 1.01x: caches bounded, nothing per step or per model kept), and
  counts the replaced models still alive (must be 0: the jit cache holds them weakly);
- the second row counts everything. JAX's own caches grow by about 1 KiB per new model
  (its eager dispatch of the initializers and tree-structure checks), less with each
  replacement, so that row reads 1.00x–1.01x and is reported only.

Run alone: ``python -m benchmarks.bench_stress``.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
import weakref
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

import flaxen
from benchmarks.bench_nnx import MLP, nnx_step
from benchmarks.timing import Result
from flaxen import nnx

STEPS, WARMUP, REPLACE_EVERY = 10_000, 1_000, 1_000


def run(steps: int = STEPS) -> list[Result]:
  x = jax.random.normal(jax.random.key(1), (8, 16))
  y = jnp.zeros((8, 4))
  step = nnx.jit(nnx_step)
  tx = optax.sgd(0.1)  # one transformation: a new one is a new static, hence a new trace
  freed = [0]  # counted by finalizers: a list of weakrefs would itself grow the heap

  def fresh():
    # The same seed each time: JAX caches constants per Python scalar value it sees.
    model = MLP(nnx.Rngs(0))
    weakref.finalize(model, _count, freed)
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

  tracemalloc.start()
  model, optimizer = fresh()
  for _ in range(WARMUP):
    loss = step(model, optimizer, x, y)
  jax.block_until_ready(loss)
  gc.collect()
  start = _sizes()
  for i in range(1, steps + 1):
    loss = step(model, optimizer, x, y)
    if i % REPLACE_EVERY == 0 and i < steps:
      model, optimizer = fresh()
  jax.block_until_ready(loss)
  gc.collect()
  end = _sizes()
  tracemalloc.stop()
  replaced = (steps - 1) // REPLACE_EVERY
  alive = replaced - freed[0]
  name = f"stress: {steps:,} nnx.jit steps (a), Python memory at end vs after warm-up"
  return [
    Result(f"{name}, allocated by flaxen", end[0], start[0], target=1.01,
           unit="tracemalloc bytes", quantity="memory",
           notes=f"{replaced} replaced models, {alive} still alive; "
                 f"{len(step._entries)} cache entries"),
    Result(f"{name}, all (JAX included)", end[1], start[1], unit="tracemalloc bytes",
           quantity="memory", notes="JAX's caches: about 1 KiB per new model, shrinking"),
  ]


_FLAXEN = tracemalloc.Filter(True, str(Path(flaxen.__file__).parent / "*"))


def _sizes() -> tuple[int, int]:
  """``(bytes allocated by flaxen's code, all traced bytes)`` now (the total first: the
  snapshot is itself traced)."""
  total = tracemalloc.get_traced_memory()[0]
  snapshot = tracemalloc.take_snapshot().filter_traces([_FLAXEN])
  return sum(stat.size for stat in snapshot.statistics("filename")), total


def _count(counter: list) -> None:
  counter[0] += 1


if __name__ == "__main__":
  for r in run(int(sys.argv[1]) if len(sys.argv) > 1 else STEPS):
    print(f"{r.name}: {r.flaxen_s / 1024:.1f} KiB vs {r.reference_s / 1024:.1f} KiB, "
          f"{r.ratio:.3f}x (target {r.target}); {r.notes}")
