"""The table of layer cases the numerics tests run over (not a test file itself).

A case builds, for a float dtype, a pure function ``fn(*args)`` and its differentiable
``args``: for a layer ``(params, *float_inputs)``, for a function ``(*float_inputs)``.
Non-float inputs (ids, masks, rng keys) are closed over, so ``fn`` is deterministic and the
same under ``jax.jit``, ``jax.grad`` and ``jax.test_util.check_grads``.

``LINEN`` and ``NNX`` map a case name to its builder; the part of the name before the first
``/`` is the public layer it covers (``Conv/2d`` covers ``Conv``). A new public layer must
get a case here (and a dtype rule in test_num_dtypes.py): test_num_coverage.py fails
otherwise. Cases in ``SLOW`` run only in the slow tier.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import flaxen.linen as nn
from flaxen import nnx

Built = tuple[Callable[..., Any], tuple[Any, ...]]


def normal(shape: tuple[int, ...], dtype: Any, seed: int = 0, shift: float = 0.0) -> jax.Array:
  """Reproducible normal inputs of ``dtype`` (drawn in float64 so every dtype sees the same
  values up to rounding)."""
  values = np.random.default_rng(seed).standard_normal(shape) + shift
  return jnp.asarray(values, dtype)


# ---------------------------------------------------------------- Linen


def linen(module: nn.Module, *xs: Any, closed: tuple = (), mutable: Any = False,
          rngs: dict | None = None, method: Any = None, init_xs: tuple | None = None,
          **kw: Any) -> Built:
  """``fn(params, *xs) = module.apply({'params': params, ...rest}, *xs, *closed, **kw)``.

  ``init_xs`` replaces the inputs for ``init`` (a decode cache is sized by a full-length
  input); ``mutable`` collections are updated by the call and dropped from its result.
  """
  init_rngs = {"params": jax.random.key(0), **(rngs or {})}
  variables = module.init(init_rngs, *(init_xs or xs), *closed, method=method, **kw)
  variables = dict(variables)
  params = variables.pop("params", {})

  def fn(p: Any, *args: Any) -> Any:
    out = module.apply({"params": p, **variables}, *args, *closed, rngs=rngs,
                       mutable=mutable, method=method, **kw)
    return out[0] if mutable else out

  return fn, (params, *xs)


def running_stats(dt: Any) -> tuple[jax.Array, jax.Array]:
  """BatchNorm running ``(mean, var)`` over 3 features, not the trivial 0 and 1 of init.

  BatchNorm creates its running averages in float32 (as Flax does); the first training
  step's moving average promotes them to the batch's dtype. So a float64 model has float64
  stats in eval. Kept at init's float32, they made the float64 case compute ``var + eps``
  and its ``rsqrt`` in float32, where XLA's vectorized rsqrt (AVX-512) rounds one float32
  ulp (2^-24) differently under jit than eagerly.
  """
  dt = jnp.promote_types(dt, jnp.float32)
  return normal((3,), dt, seed=3), jnp.asarray(np.linspace(0.5, 2.0, 3), dt)


def linen_batchnorm_eval(dt: Any) -> Built:
  module = nn.BatchNorm(use_running_average=True, param_dtype=dt)
  x = normal((4, 3), dt)
  params = module.init(jax.random.key(0), x)["params"]
  mean, var = running_stats(dt)
  stats = {"mean": mean, "var": var}
  return lambda p, x: module.apply({"params": p, "batch_stats": stats}, x), (params, x)


def linen_decode(dt: Any) -> Built:
  """Three autoregressive steps of SelfAttention(decode=True), the cache threaded through."""
  module = nn.SelfAttention(num_heads=2, qkv_features=4, decode=True, param_dtype=dt)
  x = normal((1, 3, 4), dt)
  variables = module.init(jax.random.key(0), x)

  def fn(p: Any, x: Any) -> Any:
    cache, ys = variables["cache"], []
    for i in range(x.shape[1]):
      y, updated = module.apply({"params": p, "cache": cache}, x[:, i:i + 1], mutable=["cache"])
      cache = updated["cache"]
      ys.append(y)
    return jnp.concatenate(ys, axis=1)

  return fn, (variables["params"], x)


def linen_cell(cell: nn.Module, carry_shapes: Any, dt: Any, x_shape: tuple = (2, 3)) -> Built:
  carry = jax.tree.map(lambda s: normal(s, dt, seed=1), carry_shapes,
                       is_leaf=lambda s: isinstance(s, tuple) and isinstance(s[0], int))
  return linen(cell, carry, normal(x_shape, dt))


# Padding on the last of three key positions (one valid key would make the keys' gradient 0).
_KV_MASK = jnp.array([True, True, False])[None, None, None, :]


def _mask(shape: tuple[int, ...]) -> jax.Array:
  return jnp.asarray(np.random.default_rng(3).random(shape) > 0.3)


def linen_batch_apply(dt: Any) -> Built:
  """A Dense over a (2, 3) batch that BatchApply folds into one axis of 6 and unfolds."""
  dense, (params, _) = linen(nn.Dense(3, param_dtype=dt), normal((6, 4), dt))
  return (lambda p, x: nn.BatchApply(partial(dense, p))(x)), (params, normal((2, 3, 4), dt))


LINEN: dict[str, Callable[[Any], Built]] = {
  "Dense": lambda dt: linen(nn.Dense(3, param_dtype=dt), normal((2, 4), dt)),
  "DenseGeneral": lambda dt: linen(
    nn.DenseGeneral((2, 3), axis=(-2, -1), param_dtype=dt), normal((2, 3, 2), dt)),
  "DenseGeneral/batch_dims": lambda dt: linen(
    nn.DenseGeneral(3, axis=-1, batch_dims=0, param_dtype=dt), normal((2, 4), dt)),
  "Einsum": lambda dt: linen(
    nn.Einsum((3, 4, 5), "abd,cde->abce", param_dtype=dt), normal((2, 2, 4), dt)),
  "Conv/1d": lambda dt: linen(nn.Conv(3, (3,), param_dtype=dt), normal((2, 5, 2), dt)),
  "Conv/2d": lambda dt: linen(
    nn.Conv(3, (2, 2), strides=(2, 1), padding="VALID", kernel_dilation=1, param_dtype=dt),
    normal((1, 4, 4, 2), dt)),
  "Conv/3d": lambda dt: linen(nn.Conv(2, (2, 2, 2), param_dtype=dt), normal((1, 3, 3, 3, 2), dt)),
  "Conv/grouped": lambda dt: linen(
    nn.Conv(4, (3,), feature_group_count=2, padding="CIRCULAR", param_dtype=dt),
    normal((2, 5, 4), dt)),
  "ConvTranspose": lambda dt: linen(
    nn.ConvTranspose(3, (3,), strides=(2,), param_dtype=dt), normal((2, 4, 2), dt)),
  "ConvTranspose/transpose_kernel": lambda dt: linen(
    nn.ConvTranspose(2, (2, 2), transpose_kernel=True, param_dtype=dt), normal((1, 3, 3, 2), dt)),
  "ConvLocal": lambda dt: linen(nn.ConvLocal(2, (2,), param_dtype=dt), normal((2, 4, 2), dt)),
  "Embed": lambda dt: linen(
    nn.Embed(5, 3, param_dtype=dt), closed=(jnp.array([[0, 4], [2, 2]]),)),
  "Embed/attend": lambda dt: linen(
    nn.Embed(5, 3, param_dtype=dt), normal((2, 3), dt), method="attend"),
  "LayerNorm": lambda dt: linen(nn.LayerNorm(param_dtype=dt), normal((2, 5), dt, shift=1.0)),
  "LayerNorm/exact_variance_mask": lambda dt: linen(
    nn.LayerNorm(use_fast_variance=False, param_dtype=dt), normal((2, 5), dt),
    mask=_mask((2, 5)).at[:, 0].set(True)),
  "RMSNorm": lambda dt: linen(nn.RMSNorm(param_dtype=dt), normal((2, 5), dt)),
  "GroupNorm": lambda dt: linen(nn.GroupNorm(num_groups=2, param_dtype=dt),
                                normal((2, 3, 4), dt)),
  "InstanceNorm": lambda dt: linen(nn.InstanceNorm(param_dtype=dt), normal((2, 4, 3), dt)),
  "BatchNorm/train": lambda dt: linen(
    nn.BatchNorm(use_running_average=False, param_dtype=dt), normal((4, 3), dt),
    mutable=["batch_stats"]),
  "BatchNorm/eval": lambda dt: linen_batchnorm_eval(dt),
  "Dropout/deterministic": lambda dt: linen(nn.Dropout(0.5, deterministic=True),
                                            normal((2, 4), dt)),
  "Dropout/rng": lambda dt: linen(nn.Dropout(0.5, deterministic=False), normal((2, 4), dt),
                                  rngs={"dropout": jax.random.key(1)}),
  "MultiHeadDotProductAttention": lambda dt: linen(
    nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4, param_dtype=dt),
    normal((2, 3, 4), dt), normal((2, 3, 4), dt, seed=1), mask=_KV_MASK),
  "MultiHeadAttention": lambda dt: linen(
    nn.MultiHeadAttention(num_heads=2, qkv_features=4, normalize_qk=True, dropout_rate=0.3,
                          deterministic=False, param_dtype=dt),
    normal((2, 3, 4), dt), rngs={"dropout": jax.random.key(2)}),
  "SelfAttention": lambda dt: linen(
    nn.SelfAttention(num_heads=2, qkv_features=4, param_dtype=dt), normal((2, 3, 4), dt),
    mask=nn.make_causal_mask(jnp.ones((2, 3)))),
  "SelfAttention/decode": linen_decode,
  "PReLU": lambda dt: linen(nn.PReLU(param_dtype=dt, negative_slope_init=0.2),
                            normal((2, 4), dt)),
  "Sequential": lambda dt: linen(
    nn.Sequential([nn.Dense(3, param_dtype=dt), nn.tanh, nn.Dense(2, param_dtype=dt)]),
    normal((2, 4), dt)),
  "LSTMCell": lambda dt: linen_cell(nn.LSTMCell(4, param_dtype=dt), ((2, 4), (2, 4)), dt),
  "OptimizedLSTMCell": lambda dt: linen_cell(
    nn.OptimizedLSTMCell(4, param_dtype=dt), ((2, 4), (2, 4)), dt),
  "GRUCell": lambda dt: linen_cell(nn.GRUCell(4, param_dtype=dt), (2, 4), dt),
  "MGUCell": lambda dt: linen_cell(nn.MGUCell(4, param_dtype=dt), (2, 4), dt),
  "SimpleCell": lambda dt: linen_cell(nn.SimpleCell(4, param_dtype=dt), (2, 4), dt),
  "ConvLSTMCell": lambda dt: linen_cell(
    nn.ConvLSTMCell(2, (3,), param_dtype=dt), ((1, 4, 2), (1, 4, 2)), dt, x_shape=(1, 4, 3)),
  "RNN": lambda dt: linen(
    nn.RNN(nn.GRUCell(3, param_dtype=dt)), normal((2, 4, 2), dt),
    seq_lengths=jnp.array([4, 2])),
  "Bidirectional": lambda dt: linen(
    nn.Bidirectional(nn.RNN(nn.LSTMCell(3, param_dtype=dt)),
                     nn.RNN(nn.SimpleCell(2, param_dtype=dt))),
    normal((2, 3, 2), dt)),
  "WeightNorm": lambda dt: linen(
    nn.WeightNorm(nn.Dense(3, param_dtype=dt), param_dtype=dt), normal((2, 4), dt)),
  # update_stats=False keeps the call pure. sigma's gradient stops at the power iteration's
  # u and v (as in Flax); that is the true derivative only once they converge, so n_steps
  # runs the iteration to convergence for the finite-difference check.
  "SpectralNorm": lambda dt: linen(
    nn.SpectralNorm(nn.Dense(3, param_dtype=dt), n_steps=40, param_dtype=dt),
    normal((2, 4), dt),
    update_stats=False),
  "BatchApply": linen_batch_apply,
}

# Public Linen classes that are not layers with numerics of their own.
LINEN_EXCLUDED = {
  "Module": "the base class; every layer here is one",
  "RNNCellBase": "abstract base of the recurrent cells, which are all in the table",
  "Variable": "a variable handle, not a layer",
  "AxisMetadata": "boxed-metadata base class",
  "Partitioned": "boxed-metadata class (sharding names), not a layer",
  "LogicallyPartitioned": "boxed-metadata class (logical axis names), not a layer",
  "RulesFallback": "an enum of partitioning rule fallbacks",
  "FrozenDict": "container", "DenyList": "filter", "InterceptorContext": "method interception",
}
# The fp8 ops quantize to float8 with scales from an amax history; their backward pass is a
# custom VJP that returns the new scales and histories as the "gradient" of those variables,
# so neither finite differences nor a float64 run apply. test_num_fp8.py checks them.
LINEN_EXCLUDED |= dict.fromkeys(
  ["Fp8DotGeneral", "Fp8Einsum", "Fp8DotGeneralOp", "Fp8DirectDotGeneralOp",
   "NANOOFp8DotGeneralOp"],
  "fp8 op: its gradient carries scale/amax-history updates, not derivatives")


# ---------------------------------------------------------------- NNX


def nnx_layer(model: nnx.Module, *xs: Any, closed: tuple = (),
              call: Callable[..., Any] | None = None, **kw: Any) -> Built:
  """``fn(params, *xs) = merge(graphdef, params, rest)(*xs, **kw)``: a fresh copy of the
  model per call (``copy=True``: merge otherwise reuses the Variables of ``rest``), so state
  the call changes (batch stats, rng counts, caches) never leaks."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def fn(p: Any, *args: Any) -> Any:
    m = nnx.merge(graphdef, p, rest, copy=True)
    return (m if call is None else partial(call, m))(*args, *closed, **kw)

  return fn, (params, *xs)


def nnx_batchnorm_eval(dt: Any) -> Built:
  layer = nnx.BatchNorm(3, use_running_average=True, param_dtype=dt, rngs=nnx.Rngs(0))
  layer.mean.value, layer.var.value = running_stats(dt)
  return nnx_layer(layer, normal((4, 3), dt))


def nnx_decode(dt: Any) -> Built:
  layer = nnx.MultiHeadAttention(2, 4, qkv_features=4, decode=True, param_dtype=dt,
                                 rngs=nnx.Rngs(0))
  layer.init_cache((1, 3, 4), dt)

  def steps(m: Any, x: Any) -> Any:
    return jnp.concatenate([m(x[:, i:i + 1]) for i in range(x.shape[1])], axis=1)

  return nnx_layer(layer, normal((1, 3, 4), dt), call=steps)


def nnx_cell(cell: Any, carry_shapes: Any, dt: Any) -> Built:
  carry = jax.tree.map(lambda s: normal(s, dt, seed=1), carry_shapes,
                       is_leaf=lambda s: isinstance(s, tuple) and isinstance(s[0], int))
  return nnx_layer(cell, carry, normal((2, 3), dt))


def _r() -> nnx.Rngs:
  return nnx.Rngs(0)


NNX: dict[str, Callable[[Any], Built]] = {
  "Linear": lambda dt: nnx_layer(nnx.Linear(4, 3, param_dtype=dt, rngs=_r()), normal((2, 4), dt)),
  "LinearGeneral": lambda dt: nnx_layer(
    nnx.LinearGeneral((3, 2), (2, 3), axis=(-2, -1), param_dtype=dt, rngs=_r()),
    normal((2, 3, 2), dt)),
  "Einsum": lambda dt: nnx_layer(
    nnx.Einsum("abd,cde->abce", (3, 4, 5), (3, 5), param_dtype=dt, rngs=_r()),
    normal((2, 2, 4), dt)),
  "Conv/1d": lambda dt: nnx_layer(nnx.Conv(2, 3, (3,), param_dtype=dt, rngs=_r()),
                                  normal((2, 5, 2), dt)),
  "Conv/2d": lambda dt: nnx_layer(
    nnx.Conv(2, 3, (2, 2), strides=(2, 1), padding="VALID", param_dtype=dt, rngs=_r()),
    normal((1, 4, 4, 2), dt)),
  "Conv/3d": lambda dt: nnx_layer(nnx.Conv(2, 2, (2, 2, 2), param_dtype=dt, rngs=_r()),
                                  normal((1, 3, 3, 3, 2), dt)),
  "ConvTranspose": lambda dt: nnx_layer(
    nnx.ConvTranspose(2, 3, (3,), strides=(2,), param_dtype=dt, rngs=_r()), normal((2, 4, 2), dt)),
  "Embed": lambda dt: nnx_layer(nnx.Embed(5, 3, param_dtype=dt, rngs=_r()),
                                closed=(jnp.array([[0, 4], [2, 2]]),)),
  "Embed/attend": lambda dt: nnx_layer(
    nnx.Embed(5, 3, param_dtype=dt, rngs=_r()), normal((2, 3), dt),
    call=lambda m, q: m.attend(q)),
  "LayerNorm": lambda dt: nnx_layer(nnx.LayerNorm(5, param_dtype=dt, rngs=_r()),
                                    normal((2, 5), dt, shift=1.0)),
  "RMSNorm": lambda dt: nnx_layer(nnx.RMSNorm(5, param_dtype=dt, rngs=_r()), normal((2, 5), dt)),
  "GroupNorm": lambda dt: nnx_layer(nnx.GroupNorm(4, num_groups=2, param_dtype=dt, rngs=_r()),
                                    normal((2, 3, 4), dt)),
  "InstanceNorm": lambda dt: nnx_layer(nnx.InstanceNorm(3, param_dtype=dt, rngs=_r()),
                                       normal((2, 4, 3), dt)),
  "BatchNorm/train": lambda dt: nnx_layer(nnx.BatchNorm(3, param_dtype=dt, rngs=_r()),
                                          normal((4, 3), dt)),
  "BatchNorm/eval": lambda dt: nnx_batchnorm_eval(dt),
  "Dropout/deterministic": lambda dt: nnx_layer(nnx.Dropout(0.5, deterministic=True),
                                                normal((2, 4), dt)),
  "Dropout/rng": lambda dt: nnx_layer(nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=1)),
                                      normal((2, 4), dt)),
  "MultiHeadAttention": lambda dt: nnx_layer(
    nnx.MultiHeadAttention(2, 4, qkv_features=4, normalize_qk=True, param_dtype=dt,
                           decode=False, rngs=_r()),
    normal((2, 3, 4), dt), normal((2, 3, 4), dt, seed=1), mask=_KV_MASK),
  "MultiHeadAttention/dropout": lambda dt: nnx_layer(
    nnx.MultiHeadAttention(2, 4, qkv_features=4, dropout_rate=0.3, deterministic=False,
                           param_dtype=dt, decode=False, rngs=nnx.Rngs(0, dropout=2)),
    normal((2, 3, 4), dt)),
  "MultiHeadAttention/decode": nnx_decode,
  "LoRA": lambda dt: nnx_layer(
    nnx.LoRA(4, 2, 3, param_dtype=dt, b_initializer=nnx.initializers.normal(), rngs=_r()),
    normal((2, 4), dt)),
  "LoRALinear": lambda dt: nnx_layer(
    nnx.LoRALinear(4, 3, lora_rank=2, param_dtype=dt, lora_param_dtype=dt,
                   b_initializer=nnx.initializers.normal(), rngs=_r()),
    normal((2, 4), dt)),
  "Sequential": lambda dt: nnx_layer(
    nnx.Sequential(nnx.Linear(4, 3, param_dtype=dt, rngs=_r()), nnx.tanh,
                   nnx.Linear(3, 2, param_dtype=dt, rngs=_r())),
    normal((2, 4), dt)),
  "LSTMCell": lambda dt: nnx_cell(nnx.LSTMCell(3, 4, param_dtype=dt, rngs=_r()),
                                  ((2, 4), (2, 4)), dt),
  "OptimizedLSTMCell": lambda dt: nnx_cell(
    nnx.OptimizedLSTMCell(3, 4, param_dtype=dt, rngs=_r()), ((2, 4), (2, 4)), dt),
  "GRUCell": lambda dt: nnx_cell(nnx.GRUCell(3, 4, param_dtype=dt, rngs=_r()), (2, 4), dt),
  "SimpleCell": lambda dt: nnx_cell(nnx.SimpleCell(3, 4, param_dtype=dt, rngs=_r()), (2, 4), dt),
  "RNN": lambda dt: nnx_layer(nnx.RNN(nnx.GRUCell(2, 3, param_dtype=dt, rngs=_r())),
                              normal((2, 4, 2), dt), seq_lengths=jnp.array([4, 2])),
  "Bidirectional": lambda dt: nnx_layer(
    nnx.Bidirectional(nnx.RNN(nnx.LSTMCell(2, 3, param_dtype=dt, rngs=_r())),
                      nnx.RNN(nnx.SimpleCell(2, 2, param_dtype=dt, rngs=_r()))),
    normal((2, 3, 2), dt)),
  "PReLU": lambda dt: nnx_layer(nnx.PReLU(0.2, param_dtype=dt), normal((2, 4), dt)),
  "WeightNorm": lambda dt: nnx_layer(
    nnx.WeightNorm(nnx.Linear(4, 3, param_dtype=dt, rngs=_r()), param_dtype=dt, rngs=_r()),
    normal((2, 4), dt)),
  "SpectralNorm": lambda dt: nnx_layer(
    nnx.SpectralNorm(nnx.Linear(4, 3, param_dtype=dt, rngs=_r()), n_steps=40,  # as Linen's
                     param_dtype=dt, update_stats=False, rngs=_r()),
    normal((2, 4), dt)),
}

NNX_EXCLUDED = {
  "Module": "the base class; every layer here is one",
  "RNNCellBase": "abstract base of the recurrent cells, which are all in the table",
  "List": "a container Module (as in Flax): it computes nothing, its layers are in the table",
  "Dict": "a container Module (as in Flax): it computes nothing, its layers are in the table",
}


# ---------------------------------------------------------------- functions

_ATTN_QKV = ((2, 3, 2, 4), (2, 5, 2, 4), (2, 5, 2, 4))


def _fn(f: Callable[..., Any], *shapes: tuple[int, ...], **kw: Any) -> Callable[[Any], Built]:
  def build(dt: Any) -> Built:
    xs = tuple(normal(s, dt, seed=i) for i, s in enumerate(shapes))
    return (lambda *args: f(*args, **kw)), xs
  return build


ACTIVATIONS = [
  "celu", "elu", "gelu", "glu", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh",
  "identity", "leaky_relu", "log_sigmoid", "log_softmax", "logsumexp", "relu", "relu6", "selu",
  "sigmoid", "silu", "soft_sign", "softmax", "softplus", "standardize", "swish", "tanh",
]


def _activations(dt: Any) -> Built:
  """All activations in one case (a dict of outputs): one build, one compile."""
  return (lambda x: {name: getattr(nn, name)(x) for name in ACTIVATIONS}), (normal((2, 6), dt),)


FUNCTIONS: dict[str, Callable[[Any], Built]] = {
  "activations": _activations,
  "normalize": _fn(nn.normalize, (2, 6)),
  "avg_pool": _fn(nn.avg_pool, (2, 5, 5, 2), window_shape=(2, 2), strides=(1, 2),
                  padding="SAME", count_include_pad=False),
  "max_pool": _fn(nn.max_pool, (2, 5, 2), window_shape=(3,), padding=((1, 1),)),
  "min_pool": _fn(nn.min_pool, (2, 5, 5, 2), window_shape=(2, 2)),
  "pool": _fn(lambda x: nn.pool(x, 0.0, jax.lax.add, (2,), (1,), "VALID"), (2, 5, 2)),
  "dot_product_attention": _fn(nn.dot_product_attention, *_ATTN_QKV),
  "dot_product_attention_weights": _fn(nn.dot_product_attention_weights, *_ATTN_QKV[:2]),
  # NNX's own wrappers (they sow into an NNX module instead of a Linen one).
  "nnx.dot_product_attention": _fn(nnx.dot_product_attention, *_ATTN_QKV),
  "nnx.dot_product_attention_weights": _fn(nnx.dot_product_attention_weights,
                                           *_ATTN_QKV[:2]),
}

FUNCTIONS_EXCLUDED = {
  "one_hot": "integer input, no gradient",
  "make_attention_mask": "builds a boolean mask from integer inputs",
  "make_causal_mask": "builds a boolean mask",
  "combine_masks": "boolean masks",
}


# ---------------------------------------------------------------- checks


def grads_and_output(fn, n_args):
  """``(grads wrt every arg, output)`` of ``fn``; the loss weights each output element by a
  fixed normal, so errors that a plain sum would cancel (e.g. in softmax) show."""

  def loss(*args):
    out = fn(*args)
    return sum(jnp.sum(leaf * normal(leaf.shape, leaf.dtype, seed=7 + i))
               for i, leaf in enumerate(jax.tree.leaves(out))), out

  return jax.grad(loss, argnums=tuple(range(n_args)), has_aux=True)


def assert_trees_close(actual, expected, tol):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
    assert a.dtype == e.dtype and a.shape == e.shape
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):  # rng state: keys compare by their bits
      a, e = jax.random.key_data(a), jax.random.key_data(e)
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=tol, atol=tol)


def assert_nonzero_grads(grads):
  """Every param tree and input gets a nonzero gradient (so equal gradients are not
  trivially equal)."""
  for arg_grads in grads:
    leaves = jax.tree.leaves(arg_grads)
    assert not leaves or any(np.any(np.asarray(g) != 0) for g in leaves)


def covers(table: dict[str, Any]) -> set[str]:
  """The public names a table's cases cover (``Conv/2d`` covers ``Conv``, ``activations``
  covers every name in ``ACTIVATIONS``)."""
  names = {name.split("/")[0] for name in table}
  if "activations" in names:
    names = names - {"activations"} | set(ACTIVATIONS)
  return names


# Variants beyond one case per layer and mode; they run in the slow tier only, to keep the
# fast tier's compile time down.
SLOW = {
  "linen:DenseGeneral/batch_dims", "linen:Conv/grouped", "linen:ConvTranspose/transpose_kernel",
  "linen:LayerNorm/exact_variance_mask", "nnx:MultiHeadAttention/dropout",
  # The heaviest mechanisms whose twin stays fast: nnx Bidirectional; Linen's
  # MultiHeadAttention is MultiHeadDotProductAttention (here with normalize_qk and dropout).
  "linen:Bidirectional", "linen:MultiHeadAttention",
}


def parametrize_cases(tables: dict[str, dict[str, Any]], *, all_slow: bool = False) -> Any:
  """``pytest.mark.parametrize`` over ``(api, name)`` of every case; ``SLOW`` ones (or all)
  are marked slow."""
  import pytest

  params = []
  for api, table in tables.items():
    for name in table:
      slow = all_slow or f"{api}:{name}" in SLOW
      params.append(pytest.param(api, name, id=f"{api}:{name}",
                                 marks=[pytest.mark.slow] if slow else []))
  return pytest.mark.parametrize(("api", "name"), params)
