"""nn.compact_name_scope, compact/nowrap's parameter, PartitionedVariable, Module.tabulate."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors
from flaxen.linen import partitioning as nn_partitioning


class _Scoped(nn.Module):
  @nn.compact_name_scope
  def up(self, x):
    return nn.Dense(3)(x)

  @nn.compact_name_scope
  def down(self, x):
    return nn.Dense(3)(x) + self.up(x)

  @nn.compact
  def __call__(self, x):
    return self.up(x) + self.down(x) + nn.Dense(3)(x)


def _dense(p, x):
  return x @ p["kernel"] + p["bias"]


def test_compact_name_scope_names_submodules_after_the_method():
  x = jax.random.normal(jax.random.key(1), (2, 4))
  params = _Scoped().init(jax.random.key(0), x)["params"]
  assert jax.tree.map(jnp.shape, params) == {
    "Dense_0": {"bias": (3,), "kernel": (4, 3)},
    "up": {"Dense_0": {"bias": (3,), "kernel": (4, 3)}},
    "down": {"Dense_0": {"bias": (3,), "kernel": (4, 3)}},
  }
  up = _dense(params["up"]["Dense_0"], x)
  down = _dense(params["down"]["Dense_0"], x) + up  # `up` called twice shares its params
  expected = up + down + _dense(params["Dense_0"], x)
  # float32 matmuls in a different association order: a few ulps.
  np.testing.assert_allclose(_Scoped().apply({"params": params}, x), expected, rtol=1e-6)
  np.testing.assert_allclose(
    jax.jit(lambda p, x: _Scoped().apply({"params": p}, x, method="down"))(params, x),
    down, rtol=1e-6)


def test_compact_name_scope_needs_a_bound_module_and_reserves_its_name():
  with pytest.raises(errors.CallCompactUnboundModuleError):
    _Scoped().up(jnp.ones((1, 4)))

  class Clash(nn.Module):
    @nn.compact_name_scope
    def block(self, x):
      return nn.Dense(2)(x)

    @nn.compact
    def __call__(self, x):
      return nn.Dense(2, name="block")(self.block(x))

  class ClashAfter(Clash):
    @nn.compact
    def __call__(self, x):
      y = self.block(x)
      return nn.Dense(2, name="block")(y)

  for cls in (Clash, ClashAfter):  # the submodule built before or after the name scope
    with pytest.raises(errors.NameInUseError):
      cls().init(jax.random.key(0), jnp.ones((1, 2)))


def test_compact_and_nowrap_take_fun():
  assert list(inspect.signature(nn.compact).parameters) == ["fun"]
  assert list(inspect.signature(nn.nowrap).parameters) == ["fun"]
  assert list(inspect.signature(nn.compact_name_scope).parameters) == ["fun"]


class _Stats(nn.Module):
  @nn.compact
  def __call__(self, x):
    v = nn_partitioning.variable_with_axes("stats", "mean", jnp.zeros, (x.shape[-1],),
                                           axes=("embed",))
    v.value = v.value + x.mean(0)
    return v


def test_variable_with_axes_returns_a_partitioned_variable():
  x = jnp.arange(6.0).reshape(2, 3)
  _, state = _Stats().init_with_output(jax.random.key(0), x)
  np.testing.assert_array_equal(state["stats"]["mean"], x.mean(0))  # exact: one add of 0
  assert state["stats_axes"]["mean_axes"].names == ("embed",)

  def read(variables):
    var = _Stats().apply(variables, x, mutable=["stats"])[0]
    return var

  var = read(state)
  assert isinstance(var, nn_partitioning.PartitionedVariable)
  assert isinstance(var, nn.Variable) and var.axes == ("embed",)
  sig = inspect.signature(nn_partitioning.PartitionedVariable)
  assert list(sig.parameters) == ["scope", "collection", "name", "axes", "fallback"]


def test_tabulate_takes_flax_options_explicitly():
  params = inspect.signature(nn.Module.tabulate).parameters
  for name in ("depth", "show_repeated", "mutable", "console_kwargs", "table_kwargs",
               "column_kwargs", "compute_flops", "compute_vjp_flops"):
    assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
  x = jnp.ones((1, 4))
  shallow = _Scoped().tabulate(jax.random.key(0), x, depth=0, console_kwargs={"width": 200})
  deep = _Scoped().tabulate(jax.random.key(0), x, console_kwargs={"width": 200})
  assert "up/Dense_0" in deep and "up/Dense_0" not in shallow
  assert "flops" in _Scoped().tabulate(jax.random.key(0), x, compute_flops=True,
                                       console_kwargs={"width": 200})
