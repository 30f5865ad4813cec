"""recursive_map, map, unpack/GraphState, find_duplicates, set_metadata, GraphDef.apply."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx


class Foo(nnx.Pytree):
  def __init__(self, d):
    self.d = d


def test_recursive_map_graph_mode_maps_shared_node_once():
  f1, f2 = Foo(1), Foo(2)
  seen = []

  def swap(path, node):
    if isinstance(node, Foo):
      seen.append(path)
      return Foo(-node.d)
    return node

  out = nnx.recursive_map(swap, [f1, f2, f1], graph=True)
  assert [x.d for x in out] == [-1, -2, -1] and out[0] is out[2]
  assert seen == [(0,), (1,)]


def test_recursive_map_tree_mode_rejects_sharing_and_replaces_in_parents():
  f = Foo(1)
  with pytest.raises(errors.SharedReferenceError):
    nnx.recursive_map(lambda p, n: n, [f, f], graph=False)
  model = nnx.Sequential(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), nnx.relu)
  out = nnx.recursive_map(
    lambda p, n: nnx.Dropout(0.5) if isinstance(n, nnx.Linear) else n, model, graph=False)
  assert isinstance(out.layers[0], nnx.Dropout) and out.layers[1] is nnx.relu


@pytest.mark.parametrize("graph", [True, False])
def test_map_builds_a_new_graph_from_mapped_values(graph):
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  paths = []

  def double(path, v):
    paths.append(path)
    return v.value * 2

  new = nnx.map(double, model, graph=graph)
  assert sorted(paths) == [("bias",), ("kernel",)]
  np.testing.assert_array_equal(new.kernel.value, model.kernel.value * 2)
  assert isinstance(new.kernel, nnx.Param) and new.kernel is not model.kernel


@pytest.mark.parametrize("graph", [True, False])
def test_unpack_and_merge_graph_states(graph):
  model = nnx.BatchNorm(2, rngs=nnx.Rngs(0))
  params, stats = nnx.unpack(model, nnx.Param, nnx.BatchStat, graph=graph)
  assert isinstance(params, nnx.GraphState) and set(stats) == {"mean", "var"}
  doubled = jax.tree.map(lambda x: x * 2, params)
  assert isinstance(doubled, nnx.GraphState)
  new = nnx.merge(doubled, stats)
  np.testing.assert_array_equal(new.scale.value, model.scale.value * 2)


def test_find_duplicates_reports_top_shared_node():
  class Shared(nnx.Module):
    def __init__(self):
      self.a = nnx.Linear(1, 1, rngs=nnx.Rngs(0))
      self.b = nnx.Param(jnp.ones(1))
      self.c = self.a
      self.d = [self.b]

  assert nnx.find_duplicates(Shared()) == [[("a",), ("c",)], [("b",), ("d", 0)]]
  assert nnx.find_duplicates(Shared(), only=nnx.Param) == [[("b",), ("d", 0)]]


def test_set_metadata_filters():
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  nnx.set_metadata(model, only=nnx.PathContains("kernel"), sharding_names=("a", "b"))
  assert model.kernel.get_metadata()["sharding_names"] == ("a", "b")
  assert "sharding_names" not in model.bias.get_metadata()


def test_graphdef_apply_and_call_item():
  model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  x = jnp.ones((1, 2))
  y, (gd, new_state) = graphdef.apply(state)(x)
  np.testing.assert_allclose(y, x @ model.kernel.value + model.bias.value, rtol=1e-6)
  assert gd == graphdef
  nodes = {"a": model}
  out, _ = nnx.call(nnx.split(nodes))["a"](x)
  np.testing.assert_allclose(out, y)
  assert nnx.GraphDef[nnx.Linear] is not None  # usable in annotations


@pytest.mark.parametrize("graph", [True, False])
def test_flatten_unflatten_round_trip(graph):
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  graphdef, flat = nnx.flatten(model, graph=graph)
  assert [p for p, _ in flat] == [("bias",), ("kernel",)]
  assert flat[1][1] is model.kernel  # the graph's own Variables
  back = nnx.unflatten(graphdef, flat)
  np.testing.assert_array_equal(back.kernel.value, model.kernel.value)
  _, leaves = nnx.flatten(model, with_paths=False, graph=graph)
  assert nnx.unflatten(graphdef, leaves).bias.value.shape == (3,)
  v = nnx.Param(jnp.ones(1))
  with pytest.raises(errors.SharedReferenceError):
    nnx.flatten([v, v], graph=False)


def test_as_pure_and_with_vars():
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  pure = nnx.as_pure(nnx.state(model))
  assert isinstance(pure["kernel"], jax.Array)
  np.testing.assert_array_equal(pure["kernel"], model.kernel.value)
  assert nnx.with_vars(model, hijax=False) is model


def test_to_tree_from_tree_cross_jit():
  model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  x = jnp.ones((1, 2))

  @jax.jit
  def f(pure, x):
    m, scale = nnx.from_tree(pure)
    return m(x) * scale

  np.testing.assert_allclose(f(nnx.to_tree((model, 2.0)), x), model(x) * 2.0, rtol=1e-6)
  states = nnx.to_tree([model])[0]
  assert isinstance(states, nnx.NodeStates) and states.state["kernel"].value.shape == (2, 1)


@pytest.mark.parametrize("leaf", [nnx.Param(1.0), 42, jnp.array([1, 2])], ids=type)
def test_split_of_a_leaf_is_the_leaf(leaf):
  graphdef, state = nnx.split(leaf)
  assert state is leaf and nnx.merge(graphdef, state) is leaf
  x = jnp.array(1.0)
  graphdef, arrays, rest = nnx.split(x, jax.Array, ...)
  assert arrays is x and rest == nnx.State({}) and nnx.merge(graphdef, arrays, rest) is x


def test_update_and_pop_through_plain_dicts_and_lists():
  node = {"a": {"b": 1, "c": nnx.Param(jnp.array(2)), "d": 3}}
  nnx.update(node, {"a": {"b": 4, "c": jnp.array(10)}})
  assert node["a"]["b"] == 4 and int(node["a"]["c"][...]) == 10 and node["a"]["d"] == 3
  node = {"a": [jnp.array(1), nnx.Param(jnp.array(2)), jnp.array(3.0)]}
  popped = nnx.pop(node, (nnx.Param, lambda _, x: x < 2))
  assert int(popped["a"][0]) == 1 and int(popped["a"][1][...]) == 2
  assert len(node["a"]) == 1 and float(node["a"][0]) == 3.0


def test_ellipsis_index_of_a_scalar_variable():
  v = nnx.Param(jnp.array(2))
  v[...] = 3
  assert v[...] == 3


def test_map_without_recreating_variables_puts_plain_values():
  rngs = nnx.map(lambda path, x: 0, nnx.Rngs(0), recreate_variables=False)
  assert rngs.default.count == 0 and not isinstance(rngs.default.count, nnx.Variable)


def test_state_helpers_with_flax_parameters():
  state = nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
  shapes = nnx.to_pure_dict(state, lambda path, v: v.value.shape)
  assert shapes == {"bias": (3,), "kernel": (2, 3)}
  assert isinstance(nnx.merge_state(state, state, cls=nnx.GraphState), nnx.GraphState)
  flat = nnx.FlatState([(("b",), 1), (("a", 1), 2), (("a", 0), 3)])
  assert flat.paths == (("a", 0), ("a", 1), ("b",))
  assert nnx.Not(collection_filter=nnx.Param)((), nnx.BatchStat(1)) is True


def test_flat_state_members():
  state = nnx.state(nnx.BatchNorm(2, rngs=nnx.Rngs(0)))
  flat = state.flat_state()
  params, stats = flat.filter(nnx.Param, nnx.BatchStat)
  assert params.paths == (("bias",), ("scale",)) and stats.paths == (("mean",), ("var",))
  merged = nnx.FlatState.merge(params, stats)
  assert merged.paths == (("bias",), ("mean",), ("scale",), ("var",))
  assert merged.to_nested_state()["mean"] is state["mean"]
  again = nnx.FlatState.from_sorted_keys_values(merged.paths, merged.leaves)
  assert again == merged and state.raw_mapping is state._mapping
  doubled = state.map(lambda path, v: v.replace(v.value * 2))
  np.testing.assert_array_equal(doubled["scale"].value, state["scale"].value * 2)


def test_map_of_a_lone_variable():
  v = nnx.Param(jnp.ones(3), tag="t")
  out = nnx.map(lambda path, x: (path, x.value * 2), v)
  assert isinstance(out, nnx.Param) and out is not v and out.tag == "t"
  assert out.value[0] == () and np.array_equal(out.value[1], 2 * jnp.ones(3))
  assert nnx.map(lambda path, x: 0, v, recreate_variables=False) == 0
