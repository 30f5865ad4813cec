"""The snapshot / rebuild / write-back protocol that lifted transforms build on.

A transform takes a bound submodule's variables and fresh rngs, runs a pure function that
rebuilds the submodule on a new root scope (``core.bind(..., path=...)`` and
``module.clone(parent=scope)``), and writes the mutated collections back.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import core, errors


class Scaler(nn.Module):
  @nn.compact
  def __call__(self, x):
    w = self.param("w", jax.nn.initializers.normal(1.0), x.shape[-1:])
    count = self.variable("batch_stats", "count", jnp.zeros, ())
    if not self.is_initializing():
      count.value += 1
    return x * w


def run_jitted(child: nn.Module, x):
  """Call ``child`` inside jax.jit as a transform would, writing back its mutations."""
  scope = child.scope
  variables = scope.variables()
  rngs = {s: scope.make_rng(s) for s in scope.root.rngs}
  mutable, flags = scope.root.mutable, dict(scope.root.flags)

  def pure(variables, rngs, x):
    inner = core.bind(variables, rngs, mutable, flags, path=scope.path)
    y = child.clone(parent=inner)(x)
    return y, inner.mutable_variables()

  y, mutated = jax.jit(pure)(variables, rngs, x)
  scope.put_variables(mutated)
  return y


class Outer(nn.Module):
  @nn.compact
  def __call__(self, x):
    return run_jitted(Scaler(name="scaler"), x) + 1


def test_rebuilt_submodule_reads_and_writes_the_outer_variables():
  x = jnp.arange(3.0)
  v = Outer().init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, v) == {
    "params": {"scaler": {"w": (3,)}}, "batch_stats": {"scaler": {"count": ()}}}
  y, updated = Outer().apply(v, x, mutable=["batch_stats"])
  np.testing.assert_allclose(y, x * v["params"]["scaler"]["w"] + 1, rtol=1e-6)
  assert float(updated["batch_stats"]["scaler"]["count"]) == 1.0


def test_errors_inside_the_rebuilt_scope_name_the_full_path():
  x = jnp.arange(3.0)
  with pytest.raises(errors.ScopeParamNotFoundError, match='"w" exists in "/scaler"'):
    Outer().apply({"params": {"scaler": {}}, "batch_stats": {"scaler": {"count": 0.0}}}, x)
