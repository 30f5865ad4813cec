"""vmap, pmap, scan, remat, cond and the loops in the three modes (graph mode with and
without graph updates, tree mode), each against the same computation in plain JAX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx

MODES = [(True, True), (True, False), (False, False)]
W = jnp.asarray(np.random.RandomState(0).randn(4, 2, 3), jnp.float32)
X = jnp.asarray(np.random.RandomState(1).randn(4, 2), jnp.float32)


class Stack(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(W)


@pytest.mark.parametrize("graph,graph_updates", MODES)
def test_vmap_maps_state_and_writes_back(graph, graph_updates):
  m, count = Stack(), nnx.BatchStat(jnp.zeros((), jnp.int32))

  @nnx.vmap(in_axes=(0, 0, None), out_axes=0, graph=graph, graph_updates=graph_updates)
  def f(m, x, count):
    m.w.value = m.w.value * 2.0
    count.value = count.value + 1  # the same for every element: may stay broadcast
    return x @ m.w.value

  y = f(m, X, count)
  np.testing.assert_allclose(y, jax.vmap(lambda w, x: x @ (w * 2.0))(W, X), rtol=1e-6)
  np.testing.assert_allclose(m.w.value, W * 2.0)
  assert int(count.value) == 1


@pytest.mark.parametrize("graph,graph_updates", MODES)
def test_pmap_matches_vmap_on_one_device(graph, graph_updates):
  v = nnx.BatchStat(jnp.zeros((1, 3)))

  @nnx.pmap(axis_size=1, graph=graph, graph_updates=graph_updates)
  def f(v, x):
    v.value = v.value + x
    return x * 2.0

  y = f(v, jnp.ones((1, 3)))
  np.testing.assert_allclose(y, 2.0 * jnp.ones((1, 3)))
  np.testing.assert_allclose(v.value, jnp.ones((1, 3)))


def test_pmap_static_broadcasted_argnums():
  @nnx.pmap(axis_size=1, static_broadcasted_argnums=(1,))
  def f(x, power):
    return x ** power

  np.testing.assert_allclose(f(jnp.full((1, 2), 3.0), 2), jnp.full((1, 2), 9.0))


@pytest.mark.parametrize("graph,graph_updates", MODES)
def test_scan_carry_identity_and_stacked_output(graph, graph_updates):
  count = nnx.BatchStat(jnp.array(0))

  @nnx.scan(graph=graph, graph_updates=graph_updates)
  def f(count, x):
    count.value = count.value + 1
    return count, x + count.value

  out, ys = f(count, jnp.arange(5))
  ref_carry, ref_ys = jax.lax.scan(lambda c, x: (c + 1, x + c + 1), 0, jnp.arange(5))
  assert out is count
  assert int(count.value) == int(ref_carry) == 5
  np.testing.assert_array_equal(ys, ref_ys)


@pytest.mark.parametrize("graph", [True, False])
def test_scan_new_carry_object_is_an_error(graph):
  @nnx.scan(graph=graph, graph_updates=False)
  def f(count, x):
    return nnx.BatchStat(count.value + 1), x

  with pytest.raises(errors.LoopStructureError, match="identity must be preserved"):
    f(nnx.BatchStat(jnp.array(0)), jnp.arange(3))


def test_scan_carry_checks_when_made():
  with pytest.raises(errors.TransformAxesError, match="the other must also have Carry"):
    nnx.scan(lambda a, b: a, in_axes=(nnx.Carry, 0), out_axes=0)
  with pytest.raises(errors.TransformAxesError, match="multiple Carry"):
    nnx.scan(lambda a, b: a, in_axes=(nnx.Carry, nnx.Carry))
  with pytest.raises(errors.TransformAxesError, match="Cannot broadcast output state"):
    nnx.scan(lambda a, b: a, in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, None))


def test_tree_mode_rejects_a_shared_variable_and_state_axes():
  v = nnx.Param(jnp.ones(3))
  with pytest.raises(errors.DuplicateVariableError):
    nnx.vmap(lambda a, b: a + b, graph=False)(v, v)
  with pytest.raises(errors.PrefixFilterError, match="StateAxes"):
    nnx.vmap(lambda a: a, in_axes=nnx.StateAxes({...: 0}), graph=False)
  with pytest.raises(errors.GraphNodePrefixError):
    nnx.vmap(lambda a: a, in_axes=nnx.Dict(a=nnx.Param(1)), graph=True)


def test_graph_mode_inconsistent_aliasing():
  v = nnx.Param(jnp.ones(3))
  with pytest.raises(errors.InconsistentAliasingError):
    nnx.vmap(lambda a, b: a, in_axes=(0, None), graph=True, graph_updates=False)(v, v)


@pytest.mark.parametrize("graph,graph_updates", MODES)
def test_cond_and_fori_loop_update_variables(graph, graph_updates):
  v = nnx.Variable(jnp.array(8))

  def even(v):
    v.value = v.value // 2

  def odd(v):
    v.value = 3 * v.value + 1

  for expected in (4, 2, 1, 4):
    nnx.cond(v.value % 2 == 0, even, odd, v, graph=graph, graph_updates=graph_updates)
    assert int(v.value) == expected

  def body(i, v):
    v.value = v.value + i
    return v

  nnx.fori_loop(0, 4, body, v, graph=graph, graph_updates=graph_updates)
  assert int(v.value) == 4 + 0 + 1 + 2 + 3


@pytest.mark.parametrize("graph,graph_updates", MODES)
def test_remat_gradient_matches_plain_jax(graph, graph_updates):
  m = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  x = jnp.ones((1, 2))

  def loss(m):
    return nnx.remat(lambda m, x: jnp.sin(m(x)).sum(), graph=graph,
                     graph_updates=graph_updates)(m, x)

  g = nnx.grad(loss)(m)
  ref = jax.grad(lambda k, b: jnp.sin(x @ k + b).sum(), argnums=(0, 1))(
    m.kernel.value, m.bias.value)
  np.testing.assert_allclose(g["kernel"].value, ref[0], rtol=1e-6)
  np.testing.assert_allclose(g["bias"].value, ref[1], rtol=1e-6)


@pytest.mark.parametrize("graph,graph_updates", MODES)
def test_shard_map_updates_state_and_matches_plain_jax(graph, graph_updates):
  mesh = jax.sharding.Mesh(jax.devices()[:1], ("d",))
  P = jax.sharding.PartitionSpec
  m, count = Stack(), nnx.BatchStat(jnp.array(0))

  @nnx.shard_map(mesh=mesh, in_specs=(P("d"), P("d"), P()), out_specs=P("d"), graph=graph,
                 graph_updates=graph_updates)
  def f(m, x, count):
    count.value = count.value + 1
    return jnp.einsum("bi,bio->bo", x, m.w.value)

  y = f(m, X, count)
  np.testing.assert_allclose(y, jnp.einsum("bi,bio->bo", X, W), rtol=1e-6)
  assert int(count.value) == 1


def test_state_axes_from_a_state_of_axes():
  m = Stack()
  axes = nnx.state(m)
  axes["w"] = 1
  y = nnx.vmap(lambda m: m.w.value.sum(0), in_axes=(nnx.StateAxes(axes),))(m)
  np.testing.assert_allclose(y, jnp.moveaxis(W, 1, 0).sum(1), rtol=1e-6)


@pytest.mark.parametrize("graph_updates", [True, False])
def test_while_loop_carry_with_one_object_twice(graph_updates):
  v = nnx.BatchStat(jnp.array(0.0))

  def body(val):
    i, a, b = val
    a.value = a.value + 1.0  # a and b are one Variable
    return i + 1, a, b

  i, a, b = nnx.while_loop(lambda val: val[0] < 3, body, (0, v, v), graph=True,
                           graph_updates=graph_updates)
  assert int(i) == 3 and a is v and b is v
  assert float(v.value) == 3.0


class Block(nnx.Module):
  def __init__(self, rngs):
    self.linear = nnx.Linear(3, 3, rngs=rngs)
    self.count = nnx.BatchStat(jnp.array(0))

  def __call__(self, x):
    self.count.value += 1
    return self.linear(x)


@pytest.mark.parametrize("graph", [True, False])
def test_prefix_gives_per_variable_axes_without_graph_updates(graph):
  axes = nnx.prefix(nnx.eval_shape(lambda: Block(nnx.Rngs(0))), {nnx.Param: 0, ...: None},
                    graph=graph)
  if graph:
    assert axes.prefix_of(("linear", "kernel"), None) == 0
    assert axes.prefix_of(("count",), None) is None
  else:  # tree mode: a copy of the Module whose Variables hold the axes
    assert axes.linear.kernel.value == 0 and axes.count.value is None

  @nnx.split_rngs(splits=4)
  @nnx.vmap(in_axes=0, out_axes=axes, graph=graph, graph_updates=False)
  def create(rngs):
    return Block(rngs)

  module = create(nnx.Rngs(0))
  assert module.linear.kernel.value.shape == (4, 3, 3)
  assert module.count.value.shape == ()

  @nnx.vmap(in_axes=(axes, 0), out_axes=0, graph=graph, graph_updates=False)
  def forward(m, x):
    return m(x)

  x = jnp.ones((4, 1, 3))
  y = forward(module, x)
  ref = jax.vmap(lambda k, b, x: x @ k + b)(module.linear.kernel.value,
                                           module.linear.bias.value, x)
  np.testing.assert_allclose(y, ref, rtol=1e-6)
  assert int(module.count.value) == 1


def test_prefix_of_a_tuple_and_unmatched_filter():
  m, rngs = Block(nnx.Rngs(0)), nnx.Rngs(0)
  m_axes, r_axes = nnx.prefix((m, rngs), {nnx.Param: 0, nnx.RngState: None, nnx.BatchStat: 1})
  assert m_axes.values() == [1, 0]  # count, then linear's bias and kernel
  assert r_axes.values() == [None]
  with pytest.raises(errors.UnmatchedFilterError):
    nnx.prefix(m, {nnx.Param: 0})


def test_bound_methods_of_modules_are_refused():
  m = Block(nnx.Rngs(0))
  for make in (nnx.vmap, nnx.pmap, nnx.remat, lambda f: nnx.scan(f, in_axes=(0,), out_axes=0)):
    with pytest.raises(errors.BoundMethodError, match="bound methods"):
      make(m.__call__)


def test_scan_stacks_variables_the_body_adds_with_graph_updates():
  axes = nnx.StateAxes({(nnx.Param, nnx.Intermediate): 0, ...: None})
  stack = nnx.Dict(w=nnx.Param(jnp.arange(12.0).reshape(4, 3)))

  @nnx.scan(in_axes=(axes, nnx.Carry), out_axes=nnx.Carry, graph=True, graph_updates=True)
  def f(m, x):
    x = x * m["w"].value
    m["seen"] = nnx.Intermediate(x)  # a new Variable in every iteration
    return x

  y = f(stack, jnp.ones(3))
  ref_y, ref_seen = jax.lax.scan(lambda c, w: (c * w, c * w), jnp.ones(3), stack["w"].value)
  np.testing.assert_allclose(y, ref_y)
  np.testing.assert_allclose(stack["seen"].value, ref_seen)


def test_vmap_names_the_axis_of_variables_made_in_an_input():
  axes = nnx.StateAxes({nnx.Param: 0, ...: None})

  class M(nnx.Module):
    @nnx.vmap(in_axes=(axes, 0), transform_metadata={nnx.PARTITION_NAME: "layers"})
    def __init__(self, key):
      w = jax.random.normal(key, (2, 3))
      self.w = nnx.Param(w, sharding_names=("a", "b"))

  m = M(jax.random.split(jax.random.key(0), 4))
  assert m.w.value.shape == (4, 2, 3)
  assert m.w.sharding_names == ("layers", "a", "b")


class Box(nnx.Pytree):
  def __init__(self, data):
    self.data = data  # a raw array attribute, not a Variable


@pytest.mark.parametrize("graph,graph_updates", MODES)
def test_scan_carries_raw_array_attributes(graph, graph_updates):
  box = Box(jnp.array(0.0))

  @nnx.scan(in_axes=nnx.Carry, out_axes=nnx.Carry, length=4, graph=graph,
            graph_updates=graph_updates)
  def f(b):
    b.data = b.data + 1.0
    return b

  out = f(box)
  assert float(out.data) == 4.0


def test_shard_map_with_state_sharding_from_a_state():
  mesh = jax.sharding.Mesh(jax.devices()[:1], ("d",))
  P = jax.sharding.PartitionSpec
  m = nnx.Linear(2, 4, rngs=nnx.Rngs(0))
  specs = nnx.StateSharding(nnx.State({"kernel": P(None, "d"), "bias": P("d")}))
  assert specs.map_prefix(("kernel",), m.kernel) == P(None, "d")

  @nnx.shard_map(mesh=mesh, in_specs=(specs, P()), out_specs=P(None, "d"), graph=True,
                 graph_updates=True)
  def f(m, x):
    return m(x)

  x = jnp.ones((3, 2))
  np.testing.assert_allclose(f(m, x), x @ m.kernel.value + m.bias.value, rtol=1e-6)


def test_transform_metadata_takes_axes_per_argument():
  v = nnx.Param(jnp.zeros((4, 2)), sharding_names=("layers", "d"))

  @nnx.transform_metadata(in_axes=(0, nnx.Carry), out_axes=nnx.Carry, partition="layers")
  def f(v, c):
    assert v.sharding_names == ("d",)
    return c

  f(v, jnp.ones(()))
  assert v.sharding_names == ("layers", "d")


@pytest.mark.parametrize("graph_updates", [True, False])
def test_scan_traces_its_body_once_per_structure(graph_updates):
  traces = []
  stack = nnx.Dict(w=nnx.Param(jnp.arange(6.0).reshape(3, 2)))

  @nnx.scan(in_axes=(nnx.Carry, 0, None), out_axes=nnx.Carry, graph_updates=graph_updates)
  def f(c, m, scale):
    traces.append(1)
    return c + m["w"].value * scale

  first = f(jnp.zeros(2), stack, jnp.array(1.0))
  second = f(jnp.zeros(2), stack, jnp.array(2.0))  # a new broadcast value, no new trace
  assert len(traces) == 1
  np.testing.assert_allclose(first, stack["w"].value.sum(0))
  np.testing.assert_allclose(second, 2.0 * stack["w"].value.sum(0))
