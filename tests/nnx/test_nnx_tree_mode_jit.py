"""nnx.jit / jit_partial / cached_partial in tree mode and in graph mode without graph
updates, against plain jax.jit on the same arrays."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx

MODES = [(False, False), (True, False)]  # (graph, graph_updates) without graph updates
X = jnp.arange(6.0).reshape(3, 2)


def _ref(kernel, bias, x):
  return x @ kernel + bias


class Counted(nnx.Module):
  def __init__(self):
    self.linear = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    self.calls = nnx.BatchStat(jnp.array(0))
    self.tag = "a"

  def __call__(self, x):
    self.calls[...] += 1
    return self.linear(x)


@pytest.mark.parametrize("graph,updates", MODES)
def test_variable_updates_flow_back_and_output_matches_jax(graph, updates):
  m = Counted()
  traces = []

  @nnx.jit(graph=graph, graph_updates=updates)
  def f(m, x):
    traces.append(1)
    return m(x)

  kernel, bias = m.linear.kernel[...], m.linear.bias[...]
  for i in range(1, 4):
    np.testing.assert_allclose(f(m, X), jax.jit(_ref)(kernel, bias, X), rtol=1e-6)
    assert int(m.calls[...]) == i
  assert len(traces) == 1  # the cached call path: one trace


@pytest.mark.parametrize("graph,updates", MODES)
def test_structure_changes_stay_inside(graph, updates):
  m = Counted()
  linear = m.linear

  @nnx.jit(graph=graph, graph_updates=updates)
  def f(m):
    m.tag = "b"
    m.linear = nnx.Linear(2, 3, rngs=nnx.Rngs(1))

  f(m)
  assert m.tag == "a" and m.linear is linear


@pytest.mark.parametrize("graph,updates", MODES)
def test_output_graph_objects_are_new(graph, updates):
  @nnx.jit(graph=graph, graph_updates=updates)
  def make(x):
    return nnx.Param(x + 1), nnx.Linear(2, 3, rngs=nnx.Rngs(0))

  v, lin = make(jnp.array(1.0))
  assert isinstance(v, nnx.Param) and float(v[...]) == 2.0
  ref = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(lin.kernel[...], ref.kernel[...])


@pytest.mark.parametrize("graph,updates", MODES)
def test_returning_an_input_variable_raises(graph, updates):
  v = nnx.Param(jnp.array(1.0))
  with pytest.raises(errors.VariableAliasingError, match="does not support Variable aliasing"):
    nnx.jit(lambda v: v, graph=graph, graph_updates=updates)(v)


def test_tree_mode_rejects_shared_variables_graph_mode_keeps_them():
  v = nnx.Param(jnp.array(1.0))
  a, b = nnx.Dict(v=v), nnx.Dict(v=v)

  def f(a, b):
    a.v[...] += 1.0
    return a.v[...] + b.v[...]

  with pytest.raises(errors.DuplicateVariableError, match="found at paths") as e:
    nnx.jit(f, graph=False)(a, b)
  assert len(e.value.paths) == 2
  out = nnx.jit(f, graph=True, graph_updates=False)(a, b)
  assert float(out) == 4.0 and float(v[...]) == 2.0  # one Variable, seen through both


def test_donated_unchanged_variable_stays_usable():
  v = nnx.Param(jnp.array(1.0))
  f = nnx.jit(lambda v: v[...] + 1.0, graph=False, donate_argnums=0)
  assert float(f(v)) == 2.0 and float(f(v)) == 2.0 and float(v[...]) == 1.0


@pytest.mark.parametrize("graph", [True, False])
def test_jit_partial_binds_graph_objects_and_lowers(graph):
  m = Counted()
  f = nnx.jit_partial(lambda m, x: m(x), m, graph=graph, graph_updates=False)
  expected = _ref(m.linear.kernel[...], m.linear.bias[...], X)
  np.testing.assert_allclose(f(X), expected, rtol=1e-6)
  compiled = f.lower(X).compile()
  np.testing.assert_allclose(compiled(X), expected, rtol=1e-6)
  assert int(m.calls[...]) == 2


def test_lower_compile_updates_the_arguments_in_graph_mode():
  m = Counted()
  compiled = nnx.jit(lambda m, x: m(x)).lower(m, X).compile()
  assert compiled.as_text()
  compiled(m, X)
  compiled(m, X)
  assert int(m.calls[...]) == 2


def test_mode_defaults_come_from_the_config():
  v = nnx.Param(jnp.array(1.0))
  with nnx.set_graph_mode(False):
    f = nnx.jit(lambda a, b: None)
  with pytest.raises(errors.DuplicateVariableError):
    f(v, v)
  nnx.jit(lambda a, b: None)(v, v)  # graph mode (the default): shared references are fine


def test_cached_partial_copies_structure_and_shares_variables():
  m = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  seen = []

  @nnx.jit
  def f(cached, m):
    seen.append((cached is m, cached.kernel is m.kernel))
    return cached

  g = nnx.cached_partial(f, m)
  out = g(m)
  assert seen == [(False, True)]
  assert out is not m and out.kernel is m.kernel and g(m) is out


def test_state_sharding_and_prefix_errors():
  sharding = nnx.StateSharding({nnx.PathContains("kernel"): None, ...: None})
  with pytest.raises(errors.PrefixFilterError, match="cannot contain `StateSharding`"):
    nnx.jit(lambda m: None, in_shardings=(sharding,), graph=False)
  m = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  with pytest.raises(errors.GraphNodePrefixError, match="not allowed as prefixes"):
    nnx.jit(lambda m: None, in_shardings=m)
  with pytest.raises(errors.BoundMethodError, match="bound methods"):
    nnx.jit(m.__call__)
  # graph mode: a StateSharding per Variable, the state comes back with it
  cpu = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  nnx.jit(lambda m: None, in_shardings=(nnx.StateSharding({...: cpu}),))(m)
  assert m.kernel[...].sharding == cpu


def test_static_argnames_resolve_positional_calls():
  traces = []

  def f(x, scale, flip):
    traces.append(flip)
    return -x * scale if flip else x * scale

  g = nnx.jit(f, static_argnames="flip", graph=False)
  assert float(g(jnp.array(2.0), 3.0, True)) == -6.0
  assert float(g(jnp.array(2.0), 3.0, False)) == 6.0
  assert traces == [True, False]


@pytest.mark.parametrize("graph", [True, False])
def test_out_shardings_from_nnx_prefix_constrain_each_variable(graph):
  mesh = jax.sharding.Mesh(jax.devices()[:1], ("a",))
  named = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  template = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  specs = nnx.prefix(template, {nnx.PathContains("kernel"): named, ...: None}, graph=graph)

  @nnx.jit(out_shardings=specs, graph=graph, graph_updates=False)
  def make():
    return nnx.Linear(2, 3, rngs=nnx.Rngs(0))

  m = make()
  assert m.kernel[...].sharding == named
  np.testing.assert_array_equal(m.kernel[...], template.kernel[...])
