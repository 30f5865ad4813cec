"""Dtype rules of every layer, as Flax documents them: params are created in ``param_dtype``
(float32 by default); ``dtype=None`` computes in the promoted type of inputs and params
(``promote_dtype``), a given ``dtype`` wins; Embed looks up in ``dtype`` or ``param_dtype``;
layers without params keep the input dtype; normalization statistics are computed in float32.

Output dtypes come from ``jax.eval_shape`` (tracing only, no compilation).
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from num_cases import normal

import flaxen.linen as nn
from flaxen import nnx

BF16, F16, F32 = jnp.bfloat16, jnp.float16, jnp.float32
# (input dtype, param_dtype, dtype): half inputs with float32 params, all bfloat16, mixed
# halves (which promote to float32), and an explicit dtype over float16 params.
COMBOS = [(BF16, F32, None), (BF16, BF16, None), (F16, BF16, None), (F32, F16, BF16)]

# Recurrent layers carry their state in one dtype (``nn.RNN`` scans it), so their carry is
# given in the computation dtype and params and inputs do not mix half types.
# An RNN starts from a carry in param_dtype, as in Flax, so its combos leave dtype=None.
CELL_COMBOS = [(BF16, F32, None), (BF16, BF16, None), (F16, F16, None), (F32, F32, BF16)]

PROMOTE, LOOKUP, KEEP, CELL, RNN = "promote", "lookup", "keep", "cell", "rnn"
# Promote, with dtype=None only: Linen's SpectralNorm, like Flax's, maps the params with a
# mutable map_variables, so at init the normalized kernel (in ``dtype``) is what gets
# stored; a given dtype would then be a param dtype too.
WRITES_BACK = "writes_back"
RULE_COMBOS = {CELL: CELL_COMBOS, RNN: CELL_COMBOS[:3], WRITES_BACK: COMBOS[:3]}


def expected(rule, x_dtype, param_dtype, dtype):
  if rule == KEEP:
    return jnp.dtype(x_dtype)
  if rule in (CELL, RNN, WRITES_BACK):
    return expected(PROMOTE, x_dtype, param_dtype, dtype)
  if dtype is not None:
    return jnp.dtype(dtype)
  return jnp.dtype(param_dtype if rule == LOOKUP else jnp.result_type(x_dtype, param_dtype))


def _carry(*shapes):
  return lambda dt: tuple(jnp.zeros(s, dt) for s in shapes) if len(shapes) > 1 else jnp.zeros(
    shapes[0], dt)


# name: (factory(**dtypes), input shape, rule, extra leading inputs (a carry) or None).
# Factories take param_dtype and dtype; layers without a dtype attribute drop it.
LINEN = {
  "Dense": (lambda **d: nn.Dense(3, **d), (2, 4), PROMOTE, None),
  "DenseGeneral": (lambda **d: nn.DenseGeneral((2, 3), **d), (2, 4), PROMOTE, None),
  "Einsum": (lambda **d: nn.Einsum((4, 3), "ab,bc->ac", **d), (2, 4), PROMOTE, None),
  "Conv": (lambda **d: nn.Conv(3, (2,), **d), (2, 4, 2), PROMOTE, None),
  "ConvTranspose": (lambda **d: nn.ConvTranspose(3, (2,), **d), (2, 4, 2), PROMOTE, None),
  "ConvLocal": (lambda **d: nn.ConvLocal(3, (2,), **d), (2, 4, 2), PROMOTE, None),
  "Embed/attend": (lambda **d: nn.Embed(5, 4, **d), (2, 4), PROMOTE, None),
  "LayerNorm": (lambda **d: nn.LayerNorm(**d), (2, 4), PROMOTE, None),
  "RMSNorm": (lambda **d: nn.RMSNorm(**d), (2, 4), PROMOTE, None),
  "GroupNorm": (lambda **d: nn.GroupNorm(2, **d), (2, 4), PROMOTE, None),
  "InstanceNorm": (lambda **d: nn.InstanceNorm(**d), (2, 3, 4), PROMOTE, None),
  "BatchNorm": (lambda **d: nn.BatchNorm(False, **d), (2, 4), PROMOTE, None),
  "MultiHeadDotProductAttention": (
    lambda **d: nn.MultiHeadDotProductAttention(2, **d), (2, 3, 4), PROMOTE, None),
  "MultiHeadAttention": (lambda **d: nn.MultiHeadAttention(2, **d), (2, 3, 4), PROMOTE, None),
  "SelfAttention": (lambda **d: nn.SelfAttention(2, **d), (2, 3, 4), PROMOTE, None),
  "Sequential": (lambda **d: nn.Sequential([nn.Dense(3, **d), nn.relu]), (2, 4), PROMOTE, None),
  "LSTMCell": (lambda **d: nn.LSTMCell(3, **d), (2, 4), CELL, _carry((2, 3), (2, 3))),
  "OptimizedLSTMCell": (
    lambda **d: nn.OptimizedLSTMCell(3, **d), (2, 4), CELL, _carry((2, 3), (2, 3))),
  "GRUCell": (lambda **d: nn.GRUCell(3, **d), (2, 4), CELL, _carry((2, 3))),
  "MGUCell": (lambda **d: nn.MGUCell(3, **d), (2, 4), CELL, _carry((2, 3))),
  "SimpleCell": (lambda **d: nn.SimpleCell(3, **d), (2, 4), CELL, _carry((2, 3))),
  "ConvLSTMCell": (lambda **d: nn.ConvLSTMCell(3, (2,), **d), (2, 5, 4), CELL,
                   _carry((2, 5, 3), (2, 5, 3))),
  "RNN": (lambda **d: nn.RNN(nn.GRUCell(3, **d)), (2, 5, 4), RNN, None),
  "Bidirectional": (lambda **d: nn.Bidirectional(nn.RNN(nn.GRUCell(3, **d)),
                                                 nn.RNN(nn.SimpleCell(2, **d))),
                    (2, 5, 4), RNN, None),
  "PReLU": (lambda dtype=None, **d: nn.PReLU(**d), (2, 4), KEEP, None),
  "Dropout": (lambda dtype=None, param_dtype=None: nn.Dropout(0.5, deterministic=False),
              (2, 4), KEEP, None),
  "WeightNorm": (lambda **d: nn.WeightNorm(nn.Dense(3, **d), **d), (2, 4), PROMOTE, None),
  "SpectralNorm": (lambda **d: _Stats(nn.SpectralNorm(nn.Dense(3, **d), **d)), (2, 4),
                   WRITES_BACK, None),
}


class _Stats(nn.Module):
  """Calls a SpectralNorm with ``update_stats`` (``init_with_output`` passes no keywords)."""
  layer: nn.Module

  def __call__(self, x):
    return self.layer(x, update_stats=True)


def _inputs(x_dtype, dtypes, shape, carry):
  inputs = (jnp.zeros(shape, x_dtype),)
  if carry is None:
    return inputs
  return (carry(expected(PROMOTE, x_dtype, dtypes["param_dtype"], dtypes["dtype"])), *inputs)


def _linen_call(name, factory, x_dtype, dtypes, shape, carry):
  module = factory(**dtypes)
  inputs = _inputs(x_dtype, dtypes, shape, carry)
  kw = {"method": "attend"} if name == "Embed/attend" else {}
  if name == "Embed/attend":  # attend needs the table: create it by a lookup first
    def run(x):
      variables = module.init(jax.random.key(0), jnp.zeros((1,), jnp.int32))
      return module.apply(variables, x, **kw), variables["params"]
    return jax.eval_shape(run, *inputs)
  rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  out, variables = jax.eval_shape(lambda *xs: module.init_with_output(rngs, *xs), *inputs)
  return out, variables.get("params", {})


def _r():
  return nnx.Rngs(0, dropout=1)


NNX = {
  "Linear": (lambda **d: nnx.Linear(4, 3, **d, rngs=_r()), (2, 4), PROMOTE, None),
  "LinearGeneral": (lambda **d: nnx.LinearGeneral(4, (2, 3), **d, rngs=_r()), (2, 4), PROMOTE,
                    None),
  "Einsum": (lambda **d: nnx.Einsum("ab,bc->ac", (4, 3), (3,), **d, rngs=_r()), (2, 4),
             PROMOTE, None),
  "Conv": (lambda **d: nnx.Conv(2, 3, (2,), **d, rngs=_r()), (2, 4, 2), PROMOTE, None),
  "ConvTranspose": (lambda **d: nnx.ConvTranspose(2, 3, (2,), **d, rngs=_r()), (2, 4, 2),
                    PROMOTE, None),
  "Embed/attend": (lambda **d: nnx.Embed(5, 4, **d, rngs=_r()), (2, 4), PROMOTE, None),
  "LayerNorm": (lambda **d: nnx.LayerNorm(4, **d, rngs=_r()), (2, 4), PROMOTE, None),
  "RMSNorm": (lambda **d: nnx.RMSNorm(4, **d, rngs=_r()), (2, 4), PROMOTE, None),
  "GroupNorm": (lambda **d: nnx.GroupNorm(4, 2, **d, rngs=_r()), (2, 4), PROMOTE, None),
  "InstanceNorm": (lambda **d: nnx.InstanceNorm(4, **d, rngs=_r()), (2, 3, 4), PROMOTE, None),
  "BatchNorm": (lambda **d: nnx.BatchNorm(4, **d, rngs=_r()), (2, 4), PROMOTE, None),
  "MultiHeadAttention": (lambda **d: nnx.MultiHeadAttention(2, 4, **d, decode=False, rngs=_r()),
                         (2, 3, 4), PROMOTE, None),
  "LoRA": (lambda **d: nnx.LoRA(4, 2, 3, **d, rngs=_r()), (2, 4), PROMOTE, None),
  "LoRALinear": (lambda param_dtype, dtype: nnx.LoRALinear(
    4, 3, lora_rank=2, param_dtype=param_dtype, dtype=dtype, lora_param_dtype=param_dtype,
    lora_dtype=dtype, rngs=_r()), (2, 4), PROMOTE, None),
  "Sequential": (lambda **d: nnx.Sequential(nnx.Linear(4, 3, **d, rngs=_r()), nnx.relu),
                 (2, 4), PROMOTE, None),
  "LSTMCell": (lambda **d: nnx.LSTMCell(4, 3, **d, rngs=_r()), (2, 4), CELL,
               _carry((2, 3), (2, 3))),
  "OptimizedLSTMCell": (lambda **d: nnx.OptimizedLSTMCell(4, 3, **d, rngs=_r()), (2, 4),
                        CELL, _carry((2, 3), (2, 3))),
  "GRUCell": (lambda **d: nnx.GRUCell(4, 3, **d, rngs=_r()), (2, 4), CELL, _carry((2, 3))),
  "SimpleCell": (lambda **d: nnx.SimpleCell(4, 3, **d, rngs=_r()), (2, 4), CELL,
                 _carry((2, 3))),
  "RNN": (lambda **d: nnx.RNN(nnx.GRUCell(4, 3, **d, rngs=_r())), (2, 5, 4), RNN, None),
  "Bidirectional": (lambda **d: nnx.Bidirectional(nnx.RNN(nnx.GRUCell(4, 3, **d, rngs=_r())),
                                                  nnx.RNN(nnx.SimpleCell(4, 2, **d, rngs=_r()))),
                    (2, 5, 4), RNN, None),
  "Dropout": (lambda dtype=None, param_dtype=None: nnx.Dropout(0.5, rngs=_r()), (2, 4), KEEP,
              None),
  "PReLU": (lambda dtype=None, **d: nnx.PReLU(**d), (2, 4), KEEP, None),
  "WeightNorm": (lambda **d: nnx.WeightNorm(nnx.Linear(4, 3, **d, rngs=_r()), **d, rngs=_r()),
                 (2, 4), PROMOTE, None),
  "SpectralNorm": (lambda **d: nnx.SpectralNorm(nnx.Linear(4, 3, **d, rngs=_r()), **d,
                                                rngs=_r()), (2, 4), PROMOTE, None),
}


def _nnx_call(name, factory, x_dtype, dtypes, shape, carry):
  inputs = _inputs(x_dtype, dtypes, shape, carry)

  def run(*xs):
    model = factory(**dtypes)
    out = model.attend(*xs) if name == "Embed/attend" else model(*xs)
    return out, nnx.state(model, nnx.Param)

  return jax.eval_shape(run, *inputs)


def _check(call, name, spec):
  factory, shape, rule, carry = spec
  for x_dtype, param_dtype, dtype in RULE_COMBOS.get(rule, COMBOS):
    out, params = call(name, factory, x_dtype, {"param_dtype": param_dtype, "dtype": dtype},
                          shape, carry)
    want = expected(rule, x_dtype, param_dtype, dtype)
    got = {leaf.dtype for leaf in jax.tree.leaves(out)}
    assert got == {want}, (name, x_dtype, param_dtype, dtype, got)
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} <= {jnp.dtype(param_dtype)}, name


@pytest.mark.parametrize("name", list(LINEN))
def test_linen_output_dtype(name):
  _check(_linen_call, name, LINEN[name])


@pytest.mark.parametrize("name", list(NNX))
def test_nnx_output_dtype(name):
  _check(_nnx_call, name, NNX[name])


@pytest.mark.parametrize("param_dtype", [F32, BF16, F16])
def test_embed_lookup_dtype(param_dtype):
  """Lookups return the table's dtype unless ``dtype`` is given (ids are integers)."""
  ids = jnp.array([[0, 2]])
  for dtype in (None, F32):
    want = jnp.dtype(dtype or param_dtype)
    module = nn.Embed(3, 2, param_dtype=param_dtype, dtype=dtype)
    out, _ = jax.eval_shape(lambda i, m=module: m.init_with_output(jax.random.key(0), i), ids)
    assert out.dtype == want
    out = jax.eval_shape(
      lambda i, d=dtype: nnx.Embed(3, 2, param_dtype=param_dtype, dtype=d, rngs=_r())(i), ids)
    assert out.dtype == want


@pytest.mark.parametrize("dtype", [BF16, F16])
def test_functions_keep_input_dtype(dtype):
  x = jax.ShapeDtypeStruct((2, 4, 4, 2), dtype)
  for f in (nn.relu, nn.gelu, nn.softmax, nn.silu, nn.log_softmax, nn.standardize,
            lambda y: nn.avg_pool(y, (2, 2)), lambda y: nn.max_pool(y, (2, 2)),
            lambda y: nn.min_pool(y, (2, 2), padding="SAME")):
    assert jax.eval_shape(f, x).dtype == dtype


@pytest.mark.parametrize("dtype", [BF16, F16])
def test_attention_functions_promote(dtype):
  """``dot_product_attention`` computes in the promoted dtype of query, key and value."""
  q = jax.ShapeDtypeStruct((1, 3, 2, 4), dtype)
  kv = jax.ShapeDtypeStruct((1, 3, 2, 4), F32)
  assert jax.eval_shape(nn.dot_product_attention, q, q, q).dtype == dtype
  assert jax.eval_shape(nn.dot_product_attention, q, kv, kv).dtype == F32
  in_f32 = jax.eval_shape(partial(nn.dot_product_attention, dtype=F32), q, q, q)
  assert in_f32.dtype == F32


# -------- statistics in float32


def _reference_norm(x, axes):
  """Normalization with float32 statistics (mean over ``axes``, biased variance)."""
  x32 = x.astype(F32)
  mean = x32.mean(axes, keepdims=True)
  var = ((x32 - mean) ** 2).mean(axes, keepdims=True)
  return (x32 - mean) / jnp.sqrt(var + 1e-6)


def _norm_cases():
  # Inputs far from zero: a bfloat16 mean of values around 64 is off by up to 0.25, so
  # statistics in bfloat16 would fail this tolerance by far.
  x = normal((8, 16), BF16, shift=64.0)
  p = {"param_dtype": BF16}
  groups = x.reshape(8, 2, 8)
  return x, [
    ("linen LayerNorm", nn.LayerNorm(**p), _reference_norm(x, -1)),
    ("linen GroupNorm", nn.GroupNorm(2, **p), _reference_norm(groups, -1).reshape(8, 16)),
    ("linen BatchNorm", nn.BatchNorm(False, epsilon=1e-6, **p), _reference_norm(x, 0)),
    ("nnx LayerNorm", nnx.LayerNorm(16, **p, rngs=_r()), _reference_norm(x, -1)),
    ("nnx GroupNorm", nnx.GroupNorm(16, 2, **p, rngs=_r()),
     _reference_norm(groups, -1).reshape(8, 16)),
    ("nnx BatchNorm", nnx.BatchNorm(16, epsilon=1e-6, **p, rngs=_r()), _reference_norm(x, 0)),
  ]


def test_norm_statistics_in_float32():
  """bfloat16 inputs and params: the result is the float32-statistics normalization rounded
  to bfloat16, and BatchNorm's running averages are stored in float32."""
  x, cases = _norm_cases()
  for label, layer, ref in cases:
    if isinstance(layer, nn.Module):
      y, variables = layer.init_with_output(jax.random.key(0), x)
      if "batch_stats" in variables:
        stats = variables["batch_stats"]
        assert {v.dtype for v in jax.tree.leaves(stats)} == {jnp.dtype(F32)}, label
    else:
      y = layer(x)
      stats = nnx.state(layer, nnx.BatchStat)
      assert {v.dtype for v in jax.tree.leaves(stats)} <= {jnp.dtype(F32)}, label
    assert y.dtype == BF16, label
    np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(ref.astype(BF16), np.float32),
                               rtol=2e-2, atol=2e-2, err_msg=label)
