"""NNX training steps and graph operations against plain JAX on explicit pytrees.

Two models, as in the NNX issue: (a) an MLP 16-32-32-4 at batch 8 with SGD, and (b) 100
blocks of Linear + BatchNorm (width 32, batch 8) with optax Adam. Each step does
value_and_grad and the optimizer update; the reference is the same math on lists of
dicts under ``jax.jit``. "nnx.jit" passes the module and optimizer directly and mutates
them in place; "split/merge" is the functional form (``nnx.merge`` inside ``jax.jit``,
``nnx.state`` out). The graph operations on (b) (``split`` / ``merge`` / ``state`` /
``update``) are timed in ``bench_nnx_graph.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from benchmarks.timing import Result, compare
from flaxen import nnx

BLOCKS, WIDTH, BATCH = 100, 32, 8
MOMENTUM, EPS = 0.99, 1e-5


class MLP(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.layers = [nnx.Linear(a, b, rngs=rngs) for a, b in ((16, 32), (32, 32), (32, 4))]

  def __call__(self, x):
    for layer in self.layers[:-1]:
      x = jax.nn.relu(layer(x))
    return self.layers[-1](x)


class Blocks(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.linears = [nnx.Linear(WIDTH, WIDTH, rngs=rngs) for _ in range(BLOCKS)]
    self.norms = [nnx.BatchNorm(WIDTH, momentum=MOMENTUM, epsilon=EPS, rngs=rngs)
                  for _ in range(BLOCKS)]

  def __call__(self, x):
    for linear, norm in zip(self.linears, self.norms, strict=True):
      x = jax.nn.relu(norm(linear(x)))
    return x


def mse(pred, y):
  return jnp.mean((pred - y) ** 2)


# ------------------------------------------------------------------ plain-JAX references


def ref_mlp(params, x):
  for p in params[:-1]:
    x = jax.nn.relu(x @ p["kernel"] + p["bias"])
  return x @ params[-1]["kernel"] + params[-1]["bias"]


def ref_blocks(params, stats, x):
  new_stats = []
  for p, s in zip(params, stats, strict=True):
    x = x @ p["kernel"] + p["bias"]
    mean = x.mean(0)
    var = jnp.maximum(0.0, (x * x).mean(0) - mean * mean)
    new_stats.append({"mean": MOMENTUM * s["mean"] + (1 - MOMENTUM) * mean,
                      "var": MOMENTUM * s["var"] + (1 - MOMENTUM) * var})
    y = (x - mean) * (jax.lax.rsqrt(var + EPS) * p["scale"])  # nnx.BatchNorm's order
    x = jax.nn.relu(y + p["bn_bias"])
  return x, new_stats


def ref_params(model):
  """The model's arrays as plain lists of dicts (the reference starts from equal values)."""
  if isinstance(model, MLP):
    return [{"kernel": l.kernel.value, "bias": l.bias.value} for l in model.layers], None
  params = [{"kernel": l.kernel.value, "bias": l.bias.value, "scale": n.scale.value,
             "bn_bias": n.bias.value} for l, n in zip(model.linears, model.norms, strict=True)]
  stats = [{"mean": n.mean.value, "var": n.var.value} for n in model.norms]
  return params, stats


# -------------------------------------------------------------------------- the steps


def nnx_step(model, optimizer, x, y):
  loss, grads = nnx.value_and_grad(lambda m: mse(m(x), y))(model)
  optimizer.update(model, grads)
  return loss


def make_ref_step(tx, with_stats: bool, jit: bool = True):
  def step(params, stats, opt_state, x, y):
    if with_stats:
      def loss_fn(p):
        out, new_stats = ref_blocks(p, stats, x)
        return mse(out, y), new_stats
      (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    else:
      loss, grads = jax.value_and_grad(lambda p: mse(ref_mlp(p, x), y))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, loss
  return jax.jit(step) if jit else step


def reference_setup(model_cls, tx, with_stats: bool):
  """A batch ``(x, y)`` for ``model_cls`` and a call that runs one plain-JAX step on it,
  keeping its own parameters, statistics and optimizer state between calls."""
  x = jax.random.normal(jax.random.key(1), (BATCH, WIDTH if with_stats else 16))
  y = jnp.zeros((BATCH, WIDTH if with_stats else 4))
  params, stats = ref_params(model_cls(nnx.Rngs(0)))
  ref = {"params": params, "stats": stats, "opt": tx.init(params)}
  ref_step = make_ref_step(tx, with_stats)

  def ref_call():
    ref["params"], ref["stats"], ref["opt"], loss = ref_step(
      ref["params"], ref["stats"], ref["opt"], x, y)
    return loss
  return x, y, ref_call


def step_rows(label: str, model_cls, tx, with_stats: bool) -> list[Result]:
  x, y, ref_call = reference_setup(model_cls, tx, with_stats)
  model = model_cls(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  stateful = nnx.jit(nnx_step)

  pure_model = model_cls(nnx.Rngs(0))
  graphdef, state = nnx.split((pure_model, nnx.Optimizer(pure_model, tx, wrt=nnx.Param)))

  def pure_trace(state, x, y):
    model, optimizer = nnx.merge(graphdef, state)
    loss = nnx_step(model, optimizer, x, y)
    return loss, nnx.state((model, optimizer))

  pure_step = jax.jit(pure_trace)
  holder = {"state": state}

  def pure_call():
    loss, holder["state"] = pure_step(holder["state"], x, y)
    return loss

  raw_ref = make_ref_step(tx, with_stats, jit=False)
  params, stats = ref_params(model_cls(nnx.Rngs(0)))
  ref_args = (params, stats, tx.init(params), x, y)
  return [
    compare(f"step: {label}, nnx.jit (stateful)", lambda: stateful(model, optimizer, x, y),
            ref_call, target=1.2, unit="per step", notes="perf issue target 1.2x"),
    compare(f"step: {label}, split/merge + jax.jit", pure_call, ref_call, unit="per step"),
    # A fresh closure per sample, so nothing JAX caches can hit: the Python of one trace.
    compare(f"trace: {label}, merge + step + state",
            lambda: jax.make_jaxpr(lambda *a: pure_trace(*a))(holder["state"], x, y),
            lambda: jax.make_jaxpr(lambda *a: raw_ref(*a))(*ref_args),
            target=1.3, unit="per trace", notes="perf issue target 1.3x",
            repeats=7, min_sample_s=0.05),
  ]


def run() -> list[Result]:
  return [
    *step_rows("(a) MLP 16-32-32-4, SGD", MLP, optax.sgd(0.1), with_stats=False),
    *step_rows(f"(b) {BLOCKS}x(Linear+BatchNorm), Adam", Blocks, optax.adam(1e-3),
               with_stats=True),
  ]
