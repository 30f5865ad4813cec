"""The graph protocol: split/merge/state/update/graphdef/clone/pop/iter_graph, sharing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import errors, nnx


class Pair(nnx.Module):
  def __init__(self, rngs):
    self.a = nnx.Linear(2, 3, rngs=rngs)
    self.b = nnx.Linear(3, 1, rngs=rngs)
    self.stat = nnx.BatchStat(jnp.zeros(3))
    self.tied = self.a  # the same submodule by two paths


def _arrays_equal(s1, s2):
  l1, l2 = jax.tree.leaves(s1), jax.tree.leaves(s2)
  return len(l1) == len(l2) and all(np.array_equal(x, y) for x, y in zip(l1, l2, strict=True))


def test_split_merge_roundtrip_keeps_values_and_sharing():
  m = Pair(nnx.Rngs(0))
  graphdef, params, stats = nnx.split(m, nnx.Param, nnx.BatchStat)
  assert set(params) == {"a", "b"} and set(stats) == {"stat"}
  m2 = nnx.merge(graphdef, params, stats)
  assert m2 is not m and m2.tied is m2.a
  assert m2.a.kernel is m.a.kernel  # split hands out, and merge reuses, the same Variables
  m3 = nnx.merge(graphdef, params, stats, copy=True)
  assert m3.tied is m3.a and m3.a.kernel is not m.a.kernel
  assert _arrays_equal(nnx.state(m2), nnx.state(m)) and _arrays_equal(nnx.state(m3), nnx.state(m))


def test_shared_variable_stays_shared():
  shared = nnx.Param(jnp.ones(2))
  d = nnx.Dict(x=shared, y=nnx.List([shared]))
  graphdef, state = nnx.split(d)
  assert [p for p, _ in state.flat_state()] == [("x",)]
  d2 = nnx.merge(graphdef, state)
  assert d2.x is d2.y[0]
  d2.x.value = jnp.zeros(2)
  np.testing.assert_array_equal(d2.y[0].value, jnp.zeros(2))


def test_reference_cycle_roundtrip():
  m = Pair(nnx.Rngs(0))
  m.parent = m
  m.b.owner = m
  m2 = nnx.merge(*nnx.split(m))
  assert m2.parent is m2 and m2.b.owner is m2


def test_unmatched_filter_raises_naming_the_path():
  m = Pair(nnx.Rngs(0))
  with pytest.raises(errors.UnmatchedFilterError, match="'stat'"):
    nnx.split(m, nnx.Param)
  with pytest.raises(ValueError):
    nnx.split(m, nnx.Param)


def test_merge_missing_state_raises():
  graphdef, params, _ = nnx.split(Pair(nnx.Rngs(0)), nnx.Param, ...)
  with pytest.raises(errors.MissingStateError, match="stat"):
    nnx.merge(graphdef, params)


def test_graphdef_is_hashable_and_static_under_jit():
  g1 = nnx.graphdef(Pair(nnx.Rngs(0)))
  g2 = nnx.graphdef(Pair(nnx.Rngs(1)))
  assert g1 == g2 and hash(g1) == hash(g2)
  assert nnx.graphdef(nnx.Linear(2, 4, rngs=nnx.Rngs(0))) != nnx.graphdef(
    nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
  traces = []

  @jax.jit
  def f(graphdef, state):
    traces.append(1)
    return nnx.merge(graphdef, state).b.kernel.value.sum(), graphdef

  _, state1 = nnx.split(Pair(nnx.Rngs(0)))
  _, state2 = nnx.split(Pair(nnx.Rngs(1)))
  _, out_g = f(g1, state1)
  f(g2, state2)
  assert len(traces) == 1 and out_g == g1


@pytest.mark.parametrize("filt, expected", [
  (nnx.Param, {("a", "kernel"), ("a", "bias"), ("b", "kernel"), ("b", "bias")}),
  (nnx.BatchStat, {("stat",)}),
  (..., None),
  (None, set()),
  (nnx.PathContains("kernel"), {("a", "kernel"), ("b", "kernel")}),
  (nnx.All(nnx.Param, nnx.PathContains("b")), {("b", "kernel"), ("b", "bias")}),
  ([nnx.Param, nnx.PathContains("b")], {("b", "kernel"), ("b", "bias")}),
  ((nnx.BatchStat, nnx.PathContains("bias")), {("a", "bias"), ("b", "bias"), ("stat",)}),
  (nnx.Not(nnx.Param), {("stat",)}),
  (nnx.Everything(), None),
  (nnx.Nothing(), set()),
  (nnx.OfType(nnx.BatchStat), {("stat",)}),
  (lambda path, v: path[-1] == "bias", {("a", "bias"), ("b", "bias")}),
])
def test_filters_select_paths(filt, expected):
  m = Pair(nnx.Rngs(0))
  paths = {p for p, _ in nnx.state(m, filt).flat_state()}
  all_paths = {p for p, _ in nnx.state(m).flat_state()}
  assert paths == (all_paths if expected is None else expected)


def test_string_filter_matches_tag():
  rngs = nnx.Rngs(params=0, dropout=1)
  state = nnx.state(rngs, "dropout")
  assert {p[0] for p, _ in state.flat_state()} == {"dropout"}


def test_state_with_several_filters_returns_tuple_and_drops_unmatched():
  params, stats = nnx.state(Pair(nnx.Rngs(0)), nnx.Param, nnx.BatchStat)
  assert "stat" in stats and "stat" not in params


def test_update_writes_values_in_place_and_adds_new_paths():
  m = Pair(nnx.Rngs(0))
  kernel = m.a.kernel
  params = nnx.state(m, nnx.Param)
  params = jax.tree.map(jnp.zeros_like, params)
  nnx.update(m, params)
  assert m.a.kernel is kernel and not m.a.kernel.value.any()
  nnx.update(m, nnx.State({"extra": nnx.Cache(jnp.ones(1))}))
  assert isinstance(m.extra, nnx.Cache)
  with pytest.raises(errors.StatePathError):
    nnx.update(m, nnx.State({"stat": {"deeper": nnx.Param(1.0)}}))


def test_update_with_raw_array_attribute():
  m = Pair(nnx.Rngs(0))
  m.raw = jnp.ones(2)
  state = nnx.state(m)
  assert ("raw",) in dict(state.flat_state())
  nnx.update(m, nnx.State({"raw": jnp.zeros(2)}))
  np.testing.assert_array_equal(m.raw, jnp.zeros(2))


def test_clone_is_deep_and_keeps_sharing():
  m = Pair(nnx.Rngs(0))
  c = nnx.clone(m)
  assert c.a is not m.a and c.tied is c.a
  c.a.kernel.value = c.a.kernel.value + 1
  assert not np.array_equal(c.a.kernel.value, m.a.kernel.value)


def test_iter_graph_visits_each_node_once_children_first():
  m = Pair(nnx.Rngs(0))
  items = list(nnx.iter_graph(m))
  nodes = [v for _, v in items if isinstance(v, nnx.Module | nnx.Variable)]
  assert len(nodes) == len({id(n) for n in nodes}) == 3 + 5
  assert items[-1] == ((), m)
  order = [p for p, _ in items]
  assert order.index(("a", "kernel")) < order.index(("a",))


def test_pytree_attribute_roundtrip():
  m = Pair(nnx.Rngs(0))
  m.pair = (nnx.Param(jnp.ones(1)), {"k": jnp.zeros(2)}, "static")
  graphdef, state = nnx.split(m)
  assert ("pair", 0) in dict(state.flat_state()) and ("pair", 1, "k") in dict(state.flat_state())
  m2 = nnx.merge(graphdef, state)
  assert isinstance(m2.pair[0], nnx.Param) and m2.pair[2] == "static"


def test_eval_shape_builds_abstract_model():
  abstract = nnx.eval_shape(lambda: Pair(nnx.Rngs(0)))
  assert abstract.a.kernel.value == jax.ShapeDtypeStruct((2, 3), jnp.float32)
  assert abstract.tied is abstract.a


# --------------------------------------------------------------------- property test

leaf_kinds = st.sampled_from(["param", "stat", "array", "static"])


@st.composite
def graphs(draw):
  """A random graph of Modules/Lists with some shared Variables and submodules."""
  n_nodes = draw(st.integers(1, 5))
  nodes = [nnx.Module() for _ in range(n_nodes)]
  pool = []
  for i, node in enumerate(nodes):
    for j in range(draw(st.integers(0, 4))):
      kind = draw(leaf_kinds)
      if kind == "param":
        value = nnx.Param(jnp.full((2,), float(i * 10 + j)))
      elif kind == "stat":
        value = nnx.BatchStat(jnp.array(float(j)))
      elif kind == "array":
        value = jnp.arange(j + 1.0)
      else:
        value = draw(st.integers(-3, 3))
      setattr(node, f"v{j}", value)
      if isinstance(value, nnx.Variable):
        pool.append(value)
    if pool and draw(st.booleans()):
      node.shared = draw(st.sampled_from(pool))
    if i > 0:
      parent = nodes[draw(st.integers(0, i - 1))]
      setattr(parent, f"child{i}", node)
      if draw(st.booleans()):
        parent.kids = [node]
  return nodes[0]


def _signature(node):
  """Structure + values + identity pattern, independent of object ids."""
  gd, leaves, paths, refs = nnx.graph.flatten(node)
  values = [np.asarray(x.value if isinstance(x, nnx.Variable) else x).tolist() for x in leaves]
  return gd, values, paths


@settings(max_examples=40, deadline=None)
@given(graphs())
def test_split_merge_roundtrip_property(root):
  gd, params, rest = nnx.split(root, nnx.Param, ...)
  copy = nnx.merge(gd, params, rest)
  assert _signature(copy) == _signature(root)
  assert nnx.graphdef(nnx.clone(root)) == gd


def test_call_runs_method_functionally():
  class Counter(nnx.Module):
    def __init__(self):
      self.n = nnx.BatchStat(jnp.array(0))

    def increment(self, by):
      self.n.value += by
      return self.n.value

  graphdef, state = nnx.split(Counter())
  out, (graphdef2, state2) = nnx.call((graphdef, state)).increment(3)
  assert int(out) == 3 and int(state2.n.value) == 3 and int(state.n.value) == 0
  assert graphdef2 == graphdef


def test_cached_partial_with_jit():
  model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))

  @nnx.jit
  def bump(m, by):
    m.bias.value = m.bias.value + by

  step = nnx.cached_partial(bump, model)
  step(1.0)
  step(2.0)
  np.testing.assert_array_equal(model.bias.value, jnp.full((1,), 3.0))


base_filters = st.sampled_from([nnx.Param, nnx.BatchStat, nnx.PathContains("v0"), ..., None,
                                nnx.PathContains("child", exact=False)])
filters = st.recursive(base_filters, lambda inner: st.one_of(
  st.tuples(inner, inner), st.lists(inner, min_size=1, max_size=2).map(list),
  inner.map(nnx.Not)), max_leaves=4)


@settings(max_examples=40, deadline=None)
@given(graphs(), filters)
def test_filter_and_its_negation_partition_the_state(root, filt):
  everything = {p for p, _ in nnx.state(root).flat_state()}
  chosen = {p for p, _ in nnx.state(root, filt).flat_state()}
  rest = {p for p, _ in nnx.state(root, nnx.Not(filt)).flat_state()}
  assert chosen | rest == everything and not chosen & rest
  _, first, second = nnx.split(root, filt, ...)
  assert {p for p, _ in first.flat_state()} == chosen
  assert {p for p, _ in second.flat_state()} == rest


def test_variables_returns_the_graph_own_variables():
  m = Pair(nnx.Rngs(0))
  params = nnx.variables(m, nnx.Param)
  assert params["a"]["kernel"] is m.a.kernel
  params["a"]["kernel"].value = jnp.zeros((2, 3))
  assert not m.a.kernel.value.any()
  assert [n for n, _ in nnx.iter_children(m)] == ["a", "b", "tied"]
