"""Linen lifted transforms against the same model written with jax.lax.scan on plain pytrees.

"trace" traces a fresh closure of a full train step (loss, gradient, SGD update) of a
24-layer Transformer stack built with ``nn.scan`` (layer stacking, ``variable_axes={'params':
0}``) with :func:`jax.make_jaxpr` each sample, so it measures the Python that runs while
tracing: lifting (snapshot, rebuild, write back), module binding and the layers' own argument
handling in flaxen; only the math in the reference. "remat loop" traces the gradient of 24
``nn.remat`` blocks applied in a Python loop, against ``jax.checkpoint`` of one block
function (whose traced and transposed jaxpr JAX caches and reuses for every layer) and
against a fresh ``jax.checkpoint`` closure per layer (what every lifted call does, in flaxen
as in Flax: it isolates the lifting machinery's own cost). "remat memory" compiles the gradient of a
deep scanned MLP with and without ``nn.remat`` around the scanned layer and reports XLA's
temporary buffer size for both (a figure, not a claim), timing the two compiled gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import flaxen.linen as nn
from benchmarks.timing import Result, compare

LAYERS = 24
WIDTH = 64
HEADS = 4
SEQ = 16
BATCH = 4
LR = 0.1
EPS = 1e-6


def attention(q, k, v):
  split = lambda t: t.reshape(*t.shape[:-1], HEADS, WIDTH // HEADS)
  q, k, v = split(q), split(k), split(v)
  weights = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(q.shape[-1]), -1)
  return jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(*q.shape[:-2], WIDTH)


class Block(nn.Module):
  @nn.compact
  def __call__(self, x, _):
    h = nn.LayerNorm(epsilon=EPS)(x)
    q, k, v = jnp.split(nn.Dense(3 * WIDTH)(h), 3, axis=-1)
    x = x + nn.Dense(WIDTH)(attention(q, k, v))
    h = nn.Dense(4 * WIDTH)(nn.LayerNorm(epsilon=EPS)(x))
    return x + nn.Dense(WIDTH)(jax.nn.gelu(h)), None


class Transformer(nn.Module):
  @nn.compact
  def __call__(self, x):
    stack = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True},
                    length=LAYERS, in_axes=nn.broadcast)
    return stack(name="blocks")(x, None)[0]


def layer_norm(p, x):
  mean = x.mean(-1, keepdims=True)
  var = jnp.maximum(0.0, (x * x).mean(-1, keepdims=True) - mean * mean)
  return (x - mean) * (jax.lax.rsqrt(var + EPS) * p["scale"]) + p["bias"]  # LayerNorm's order


def dense(p, x):
  return x @ p["kernel"] + p["bias"]


def block_ref(p, x):
  q, k, v = jnp.split(dense(p["Dense_0"], layer_norm(p["LayerNorm_0"], x)), 3, axis=-1)
  x = x + dense(p["Dense_1"], attention(q, k, v))
  h = dense(p["Dense_2"], layer_norm(p["LayerNorm_1"], x))
  return x + dense(p["Dense_3"], jax.nn.gelu(h))


def transformer_ref(params, x):
  return jax.lax.scan(lambda h, p: (block_ref(p, h), None), x, params["blocks"])[0]


def sgd_step(loss):
  def step(params, x, y):
    value, grads = jax.value_and_grad(loss)(params, x, y)
    return value, jax.tree.map(lambda p, g: p - LR * g, params, grads)

  return step


def trace_rows() -> list[Result]:
  x = jax.random.normal(jax.random.key(1), (BATCH, SEQ, WIDTH))
  y = jax.random.normal(jax.random.key(2), (BATCH, SEQ, WIDTH))
  params = Transformer().init(jax.random.key(0), x)["params"]
  assert jnp.allclose(Transformer().apply({"params": params}, x), transformer_ref(params, x),
                      atol=1e-4)

  def flaxen_trace():
    loss = lambda p, x, y: jnp.mean((Transformer().apply({"params": p}, x) - y) ** 2)
    return jax.make_jaxpr(sgd_step(loss))(params, x, y)

  def reference_trace():
    loss = lambda p, x, y: jnp.mean((transformer_ref(p, x) - y) ** 2)
    return jax.make_jaxpr(sgd_step(loss))(params, x, y)

  return [compare(f"trace train step, nn.scan {LAYERS}-layer Transformer", flaxen_trace,
                  reference_trace, target=1.5, unit="per trace", repeats=9, warmup=2,
                  min_sample_s=0.05)]


class RematLoop(nn.Module):
  @nn.compact
  def __call__(self, x):
    for i in range(LAYERS):
      x = nn.remat(Block)(name=f"block{i}")(x, None)[0]
    return x


def remat_loop_rows() -> list[Result]:
  x = jax.random.normal(jax.random.key(1), (BATCH, SEQ, WIDTH))
  params = RematLoop().init(jax.random.key(0), x)["params"]
  shared = jax.checkpoint(block_ref)

  def grad_jaxpr(model):
    return jax.make_jaxpr(jax.grad(lambda p: jnp.mean(model(p, x) ** 2)))(params)

  def layers(checkpointed):
    def model(p, x):
      for i in range(LAYERS):
        x = checkpointed()(p[f"block{i}"], x)
      return x
    return model

  flaxen = lambda: grad_jaxpr(lambda p, x: RematLoop().apply({"params": p}, x))
  one_fn = lambda: grad_jaxpr(layers(lambda: shared))
  fresh = lambda: grad_jaxpr(layers(lambda: jax.checkpoint(lambda p, x: block_ref(p, x))))
  options = {"unit": "per trace", "repeats": 5, "warmup": 1, "min_sample_s": 0.05}
  return [
    compare(f"trace grad, {LAYERS} nn.remat blocks in a loop vs one jax.checkpoint fn",
            flaxen, one_fn, target=None, **options),
    compare(f"trace grad, {LAYERS} nn.remat blocks in a loop vs fresh checkpoint per layer",
            flaxen, fresh, target=None, **options),
  ]


class MLPLayer(nn.Module):
  @nn.compact
  def __call__(self, x, _):
    return jnp.tanh(nn.Dense(x.shape[-1])(x)), None


class DeepMLP(nn.Module):
  remat: bool

  @nn.compact
  def __call__(self, x):
    layer = nn.remat(MLPLayer, prevent_cse=False) if self.remat else MLPLayer
    stack = nn.scan(layer, variable_axes={"params": 0}, split_rngs={"params": True},
                    length=64, in_axes=nn.broadcast)
    return stack(name="layers")(x, None)[0]


def memory_rows() -> list[Result]:
  x = jax.random.normal(jax.random.key(1), (256, 128))
  params = DeepMLP(False).init(jax.random.key(0), x)["params"]
  compiled, temp = {}, {}
  for remat in (True, False):
    grad = jax.jit(jax.grad(lambda p, r=remat: jnp.sum(DeepMLP(r).apply({"params": p}, x))))
    compiled[remat] = grad.lower(params).compile()
    temp[remat] = compiled[remat].memory_analysis().temp_size_in_bytes
  mib = lambda b: f"{b / 2**20:.2f} MiB"
  notes = (f"XLA temp memory of the gradient: remat {mib(temp[True])}, without "
           f"{mib(temp[False])}; times: remat vs plain")
  return [compare("gradient of a 64-layer scanned MLP, nn.remat vs none",
                  lambda: compiled[True](params), lambda: compiled[False](params),
                  target=None, unit="per gradient", notes=notes, repeats=9)]


def run() -> list[Result]:
  return trace_rows() + remat_loop_rows() + memory_rows()
