"""Linen against the same models written on plain param pytrees.

"trace" rows trace a fresh closure with :func:`jax.make_jaxpr` each sample (nothing cached by
JAX), so they measure the Python that runs while tracing: binding, cloning, naming,
variable lookups and the layers' own argument handling in flaxen; only the math in the
reference. "step" rows time the compiled train step in steady state, "apply" rows the
compiled forward pass. The "nn." rows use the library's ``nn.Dense`` / ``nn.BatchNorm``
and carry the targets; the rows without the prefix use minimal Linen layers doing exactly
the reference's math, which isolates the Module machinery (``flaxen.linen.module`` and
``flaxen.core``) and is reported only.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

import flaxen.linen as nn
from benchmarks.timing import Result, compare

WIDTH = 32
MLP_DEPTH = 4
BLOCKS = 100
LR = 0.1
kernel_init = jax.nn.initializers.lecun_normal()
zeros = jax.nn.initializers.zeros
ones = jax.nn.initializers.ones


class Dense(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", kernel_init, (x.shape[-1], self.features))
    bias = self.param("bias", zeros, (self.features,))
    return x @ kernel + bias


class BatchNorm(nn.Module):
  momentum: float = 0.9

  @nn.compact
  def __call__(self, x):
    f = x.shape[-1:]
    mean_v = self.variable("batch_stats", "mean", zeros, None, f)
    var_v = self.variable("batch_stats", "var", ones, None, f)
    mean = x.mean(0)
    var = jnp.maximum(0.0, (x * x).mean(0) - mean * mean)
    if not self.is_initializing():
      mean_v.value = self.momentum * mean_v.value + (1 - self.momentum) * mean
      var_v.value = self.momentum * var_v.value + (1 - self.momentum) * var
    scale = self.param("scale", ones, f)
    return (x - mean) * (jax.lax.rsqrt(var + 1e-5) * scale) + self.param("bias", zeros, f)


class MLP(nn.Module):
  dense: type = Dense

  @nn.compact
  def __call__(self, x):
    for _ in range(MLP_DEPTH - 1):
      x = jax.nn.relu(self.dense(WIDTH)(x))
    return self.dense(1)(x)


class Blocks(nn.Module):
  dense: type = Dense
  norm: Callable[[], nn.Module] = BatchNorm

  @nn.compact
  def __call__(self, x):
    for _ in range(BLOCKS):
      x = jax.nn.relu(self.norm()(self.dense(WIDTH)(x)))
    return x


def library_norm() -> nn.Module:
  return nn.BatchNorm(use_running_average=False, momentum=0.9)


def sgd(params, grads):
  return jax.tree.map(lambda p, g: p - LR * g, params, grads)


# ----------------------------------------------------------------------- references


def ref_mlp(params, x):
  for i, p in enumerate(params):
    x = x @ p["kernel"] + p["bias"]
    if i < len(params) - 1:
      x = jax.nn.relu(x)
  return x


def ref_mlp_init(key, x):
  keys = jax.random.split(key, MLP_DEPTH)
  sizes = [x.shape[-1]] + [WIDTH] * (MLP_DEPTH - 1) + [1]
  return [{"kernel": kernel_init(k, (a, b)), "bias": zeros(None, (b,))}
          for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def ref_blocks(params, stats, x):
  new_stats = []
  for p, s in zip(params, stats, strict=True):
    x = x @ p["kernel"] + p["bias"]
    mean = x.mean(0)
    var = jnp.maximum(0.0, (x * x).mean(0) - mean * mean)  # nn.BatchNorm's fast variance
    new_stats.append({"mean": 0.9 * s["mean"] + 0.1 * mean, "var": 0.9 * s["var"] + 0.1 * var})
    y = (x - mean) * (jax.lax.rsqrt(var + 1e-5) * p["scale"])  # nn.BatchNorm's order
    x = jax.nn.relu(y + p["bn_bias"])
  return x, new_stats


# The references below take and return Linen's variable layout (nested dicts keyed by
# module name): the regrouping into lists happens at trace time, so jit dispatches the
# same pytrees on both sides (a nested dict flattens slower than lists) and the compiled
# programs are the same.


def mlp_layers(params):
  return [params[f"Dense_{i}"] for i in range(MLP_DEPTH)]


def block_layers(params):
  return [{"kernel": params[f"Dense_{i}"]["kernel"], "bias": params[f"Dense_{i}"]["bias"],
           "scale": params[f"BatchNorm_{i}"]["scale"],
           "bn_bias": params[f"BatchNorm_{i}"]["bias"]} for i in range(BLOCKS)]


def block_stats(variables):
  return [variables["batch_stats"][f"BatchNorm_{i}"] for i in range(BLOCKS)]


def stats_variables(stats):
  return {"batch_stats": {f"BatchNorm_{i}": s for i, s in enumerate(stats)}}


def ref_blocks_on_variables(variables, x):
  out, stats = ref_blocks(block_layers(variables["params"]), block_stats(variables), x)
  return out, stats_variables(stats)


def ref_blocks_init(key, x):
  keys = jax.random.split(key, BLOCKS)
  params, stats = [], []
  d = x.shape[-1]
  for k in keys:
    params.append({"kernel": kernel_init(k, (d, WIDTH)), "bias": zeros(None, (WIDTH,)),
                   "scale": ones(None, (WIDTH,)), "bn_bias": zeros(None, (WIDTH,))})
    stats.append({"mean": zeros(None, (WIDTH,)), "var": ones(None, (WIDTH,))})
    d = WIDTH
  return params, stats


# -------------------------------------------------------------------------- the rows


def trace(fn, *args):
  """Trace a fresh wrapper of ``fn`` each call, so that no JAX cache can hit."""
  return lambda: jax.make_jaxpr(lambda *a: fn(*a))(*args)


def run() -> list[Result]:
  return rows("nn.", MLP(nn.Dense), Blocks(nn.Dense, library_norm)) + rows(
    "", MLP(), Blocks(), with_targets=False)


def rows(label: str, mlp: nn.Module, blocks: nn.Module, with_targets: bool = True
         ) -> list[Result]:
  """The rows for one choice of layers (targets only for the library layers)."""
  key = jax.random.key(0)
  x = jnp.ones((8, WIDTH))
  y = jnp.ones((8, 1))
  mlp_vars = mlp.init(key, x)
  blk_vars = blocks.init(key, x)

  def mlp_step(params, x, y):
    def loss(p):
      return jnp.mean((mlp.apply({"params": p}, x) - y) ** 2)
    value, grads = jax.value_and_grad(loss)(params)
    return sgd(params, grads), value

  def ref_mlp_step(params, x, y):
    def loss(p):
      return jnp.mean((ref_mlp(mlp_layers(p), x) - y) ** 2)
    value, grads = jax.value_and_grad(loss)(params)
    return sgd(params, grads), value

  def blk_step(variables, x):
    def loss(p):
      out, upd = blocks.apply({"params": p, "batch_stats": variables["batch_stats"]}, x,
                              mutable=["batch_stats"])
      return jnp.mean(out**2), upd
    (value, upd), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
    return sgd(variables["params"], grads), upd, value

  def ref_blk_step(variables, x):
    def loss(p):
      out, new_stats = ref_blocks(block_layers(p), block_stats(variables), x)
      return jnp.mean(out**2), stats_variables(new_stats)
    (value, upd), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
    return sgd(variables["params"], grads), upd, value

  fast = dict(repeats=7, min_sample_s=0.05)
  step_target = 1.3 if with_targets else None
  init_target = 3.0 if with_targets else None
  steady_target = 1.05 if with_targets else None
  apply_target = 1.03 if with_targets else None
  mlp_jit, ref_mlp_jit = jax.jit(mlp_step), jax.jit(ref_mlp_step)
  blk_jit, ref_blk_jit = jax.jit(blk_step), jax.jit(ref_blk_step)
  mlp_apply = jax.jit(lambda p, x: mlp.apply({"params": p}, x))
  blk_apply = jax.jit(lambda v, x: blocks.apply(v, x, mutable=["batch_stats"]))
  ref_mlp_apply = jax.jit(lambda p, x: ref_mlp(mlp_layers(p), x))
  ref_blk_apply = jax.jit(ref_blocks_on_variables)
  return [
    compare(f"apply: MLP forward, jitted ({MLP_DEPTH} {label}Dense)",
            lambda: mlp_apply(mlp_vars["params"], x), lambda: ref_mlp_apply(mlp_vars["params"], x),
            target=apply_target, unit="per call", repeats=101),
    compare(f"apply: {BLOCKS}x({label}Dense+{label}BatchNorm) forward, jitted",
            lambda: blk_apply(blk_vars, x), lambda: ref_blk_apply(blk_vars, x),
            target=apply_target, unit="per call", repeats=101,
            notes="batch_stats mutable; reference takes the same variable dicts"),
    compare(f"step: MLP train step, jitted ({MLP_DEPTH} {label}Dense)",
            lambda: mlp_jit(mlp_vars["params"], x, y),
            lambda: ref_mlp_jit(mlp_vars["params"], x, y),
            target=steady_target, unit="per step"),
    compare(f"step: {BLOCKS}x({label}Dense+{label}BatchNorm) train step, jitted",
            lambda: blk_jit(blk_vars, x),
            lambda: ref_blk_jit(blk_vars, x),
            target=steady_target, unit="per step"),
    compare(f"trace: MLP train step ({MLP_DEPTH} {label}Dense)",
            trace(lambda p, a, b: mlp_step(p, a, b), mlp_vars["params"], x, y),
            trace(lambda p, a, b: ref_mlp_step(p, a, b), mlp_vars["params"], x, y),
            target=step_target, unit="per trace", **fast),
    compare(f"trace: {BLOCKS}x({label}Dense+{label}BatchNorm) train step",
            trace(lambda v, a: blk_step(v, a), blk_vars, x),
            trace(lambda v, a: ref_blk_step(v, a), blk_vars, x),
            target=step_target, unit="per trace", **fast),
    compare(f"trace: MLP init ({MLP_DEPTH} {label}Dense)",
            trace(lambda k, a: mlp.init(k, a), key, x),
            trace(lambda k, a: ref_mlp_init(k, a), key, x),
            target=init_target, unit="per trace", **fast),
    compare(f"trace: {BLOCKS}x({label}Dense+{label}BatchNorm) init",
            trace(lambda k, a: blocks.init(k, a), key, x),
            trace(lambda k, a: ref_blocks_init(k, a), key, x),
            target=init_target, unit="per trace", **fast),
  ]
