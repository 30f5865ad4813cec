"""NNX graph operations: split / merge / state / update, how they scale, and abstract init.

Model (b) of the NNX issue: 100 blocks of Linear + BatchNorm (width 32) with its
``nnx.Optimizer`` (optax Adam), 1,402 arrays. The performance issue asks each of
``split``, ``merge``, ``state`` and ``update`` of (b) with its optimizer to take at most
3 ms (an absolute target: ``Result.max_s``); the reference column is ``jax.tree.flatten``
+ ``unflatten`` of the same State, the least any such operation must do.

Scaling: the same four operations on a list of small layers (two Params and four static
attributes each) holding 100, 1,000 and 10,000 Variables, with the time per Variable in the
notes; the "linear" rows compare 10,000 Variables against ten distinct models of 1,000
(target 1.25x), and a last row makes the same comparison for JAX's flatten + unflatten.

Abstract init: building (b) with its optimizer under ``nnx.eval_shape`` against
``jax.eval_shape`` of the same initialization written as plain JAX on lists of dicts
(target 3x). Both trace a fresh closure each time, so nothing is cached between calls.

All rows measure CPU time of this process (``time.process_time``), not wall time.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import optax

from benchmarks.bench_nnx import BLOCKS, WIDTH, Blocks
from benchmarks.timing import Result, compare
from flaxen import nnx

MAX_S = 3e-3  # the performance issue's target for each operation on (b)
# CPU time of this process: the work is pure Python, and on a shared machine wall time
# mostly measures the wait for a core.
FAST = dict(repeats=9, min_sample_s=0.05, clock=time.process_time)
# The absolute 3 ms rows: more, shorter samples spread over a longer stretch, so that a
# slow spell of the machine (a 2x slowdown for a few seconds is common on this VM) moves
# fewer than half of them.
SPREAD = dict(repeats=41, min_sample_s=0.02, clock=time.process_time)
SIZES = (100, 1_000, 10_000)


class Pair(nnx.Module):
  """Two Params and a few static attributes, like a small layer."""

  def __init__(self, value: jax.Array):
    self.kernel = nnx.Param(value)
    self.bias = nnx.Param(value)
    self.features, self.use_bias, self.dtype, self.name = 4, True, jnp.float32, "pair"


class Chain(nnx.Module):
  def __init__(self, num_variables: int):
    value = jnp.zeros((4,))
    self.layers = [Pair(value) for _ in range(num_variables // 2)]


def _ops(node) -> dict:
  graphdef, state = nnx.split(node)
  return {
    "split": lambda: nnx.split(node),
    "merge": lambda: nnx.merge(graphdef, state),
    "state": lambda: nnx.state(node),
    "update": lambda: nnx.update(node, state),
  }


def _flat_unflat(node):
  state = nnx.state(node)

  def reference():
    leaves, treedef = jax.tree.flatten(state)
    return jax.tree.unflatten(treedef, leaves)

  return reference


def model_b_rows() -> list[Result]:
  model = Blocks(nnx.Rngs(0))
  node = (model, nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param))
  reference = _flat_unflat(node)
  count = len(jax.tree.leaves(nnx.state(node)))
  note = f"{count} arrays; vs jax.tree.flatten+unflatten of the State; perf issue: ≤ 3 ms"
  return [
    dataclasses.replace(
      compare(f"graph: {name} (b) with optimizer", fn, reference, notes=note, **SPREAD),
      max_s=MAX_S)
    for name, fn in _ops(node).items()
  ]


def scaling_rows() -> list[Result]:
  chains = {n: Chain(n) for n in SIZES}
  ops = {n: _ops(chain) for n, chain in chains.items()}
  # Ten distinct models of 1,000 Variables touch as much memory as one of 10,000: the
  # "linear" rows compare the algorithm, not the CPU caches (the same 1,000-Variable model
  # ten times over stays in cache; plain JAX's flatten+unflatten reads 1.2x that way).
  parts = [Chain(SIZES[1]) for _ in range(SIZES[2] // SIZES[1])]
  part_ops = [_ops(chain) for chain in parts]
  rows = []
  for name in ("split", "merge", "state", "update"):
    for n in SIZES:
      r = compare(f"graph scaling: {name}, {n:,} Variables", ops[n][name],
                  _flat_unflat(chains[n]), **FAST)
      rows.append(dataclasses.replace(
        r, notes=f"{r.flaxen_s / n * 1e6:.2f} µs per Variable; vs flatten+unflatten"))
    rows.append(compare(
      f"graph scaling: {name}, {SIZES[2]:,} vs 10 x {SIZES[1]:,} Variables",
      ops[SIZES[2]][name], lambda name=name: [o[name]() for o in part_ops], target=1.25,
      notes="linear in the number of Variables; ten distinct models", **FAST))
  part_refs = [_flat_unflat(chain) for chain in parts]
  rows.append(compare(
    f"plain JAX flatten+unflatten, {SIZES[2]:,} vs 10 x {SIZES[1]:,} Variables",
    _flat_unflat(chains[SIZES[2]]), lambda: [r() for r in part_refs],
    notes="for scale: the same comparison for JAX itself", **FAST))
  return rows


def plain_init(key: jax.Array, tx: optax.GradientTransformation):
  """(b) and its Adam state as lists of dicts, initialized as the NNX layers do."""
  kernel_init = jax.nn.initializers.lecun_normal()
  params, stats = [], []
  for i in range(BLOCKS):
    k = jax.random.fold_in(key, i)
    params.append({"kernel": kernel_init(k, (WIDTH, WIDTH)), "bias": jnp.zeros(WIDTH),
                   "scale": jnp.ones(WIDTH), "bn_bias": jnp.zeros(WIDTH)})
    stats.append({"mean": jnp.zeros(WIDTH), "var": jnp.ones(WIDTH)})
  return params, stats, tx.init(params)


def eval_shape_rows() -> list[Result]:
  tx = optax.adam(1e-3)

  def build():
    model = Blocks(nnx.Rngs(0))
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

  return [compare(
    "graph: build (b) with optimizer under nnx.eval_shape",
    lambda: nnx.eval_shape(lambda: build()),
    lambda: jax.eval_shape(lambda: plain_init(jax.random.key(0), tx)),
    target=3.0, notes="vs jax.eval_shape of the plain-JAX init; perf issue: ≤ 3x",
    repeats=5, min_sample_s=0.2, clock=time.process_time)]


def run() -> list[Result]:
  return [*model_b_rows(), *scaling_rows(), *eval_shape_rows()]
