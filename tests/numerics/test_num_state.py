"""Stateful layers update their state the same with and without jit: batch statistics,
rng counts and decode caches after two calls (NNX under ``nnx.jit``, Linen's mutable
collections under ``jax.jit``)."""

import jax
import jax.numpy as jnp
import pytest
from num_cases import assert_trees_close, normal

import flaxen.linen as nn
from flaxen import nnx


def _nnx_models():
  return {
    "BatchNorm": (lambda: nnx.BatchNorm(3, rngs=nnx.Rngs(0)), (4, 3)),
    "Dropout": (lambda: nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=1)), (2, 4)),
    "MultiHeadAttention/dropout": (
      lambda: nnx.MultiHeadAttention(2, 4, qkv_features=4, dropout_rate=0.5,
                                     deterministic=False, decode=False,
                                     rngs=nnx.Rngs(0, dropout=2)), (2, 3, 4)),
    "MultiHeadAttention/decode": (lambda: _decoder(), (1, 1, 4)),
  }


def _decoder():
  layer = nnx.MultiHeadAttention(2, 4, qkv_features=4, decode=True, rngs=nnx.Rngs(0))
  layer.init_cache((1, 3, 4))
  return layer


@pytest.mark.parametrize("name", list(_nnx_models()))
def test_nnx_state_updates_match_under_jit(name):
  make, shape = _nnx_models()[name]
  eager, jitted = make(), make()
  call = nnx.jit(lambda m, x: m(x))
  for seed in (0, 1):
    x = normal(shape, jnp.float32, seed=seed)
    assert_trees_close(call(jitted, x), eager(x), 1e-6)
  assert_trees_close(nnx.state(jitted), nnx.state(eager), 1e-6)


def _linen_cases():
  x = normal((4, 3), jnp.float32)
  seq = normal((1, 1, 4), jnp.float32)
  return {
    "BatchNorm": (nn.BatchNorm(use_running_average=False), x, ["batch_stats"], {}),
    "SelfAttention/decode": (nn.SelfAttention(2, qkv_features=4, decode=True), seq, ["cache"],
                             {"init_x": jnp.zeros((1, 3, 4))}),
  }


@pytest.mark.parametrize("name", list(_linen_cases()))
def test_linen_mutable_collections_match_under_jit(name):
  module, x, mutable, extra = _linen_cases()[name]
  variables = module.init(jax.random.key(0), extra.get("init_x", x))

  def two_calls(variables, x):
    outs = []
    for _ in range(2):
      y, updates = module.apply(variables, x, mutable=mutable)
      variables = {**variables, **updates}
      outs.append(y)
    return outs, variables

  assert_trees_close(jax.jit(two_calls)(variables, x), two_calls(variables, x), 1e-6)
