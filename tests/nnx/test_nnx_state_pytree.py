"""State as a pytree: key paths, treedefs, metadata and laziness (state_pytree.py)."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import DictKey, GetAttrKey

from flaxen import nnx


def _state():
  return nnx.State({
    "layers": {0: {"w": nnx.Param(jnp.ones(2), sharding=("x",))}, 1: {"w": nnx.Param(2.0)}},
    "bn": {"mean": nnx.BatchStat(jnp.zeros(3))},
    "raw": jnp.arange(2.0),
  })


def test_key_paths_are_those_of_nested_states():
  paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(_state())[0]]
  assert paths == [
    (DictKey("bn"), DictKey("mean"), GetAttrKey("value")),
    (DictKey("layers"), DictKey(0), DictKey("w"), GetAttrKey("value")),
    (DictKey("layers"), DictKey(1), DictKey("w"), GetAttrKey("value")),
    (DictKey("raw"),),
  ]


def test_treedef_same_with_and_without_paths():
  state = _state()
  assert jax.tree_util.tree_flatten_with_path(state)[1] == jax.tree.structure(state)
  unread = jax.tree.map(lambda x: x, state)
  assert jax.tree_util.tree_flatten_with_path(unread)[1] == jax.tree.structure(state)
  assert jax.tree.structure(unread) == jax.tree.structure(state)


def test_round_trip_keeps_types_metadata_and_values():
  state = _state()
  out = jax.tree.map(lambda x: x * 2, state)
  w = out["layers"][0]["w"]
  assert type(w) is nnx.Param and w.sharding == ("x",)
  assert type(out.bn.mean) is nnx.BatchStat
  np.testing.assert_array_equal(w.value, 2 * jnp.ones(2))
  np.testing.assert_array_equal(out["raw"], 2 * jnp.arange(2.0))
  assert isinstance(out["layers"], nnx.State) and list(out["layers"]) == [0, 1]
  assert jax.tree.structure(out) == jax.tree.structure(state)


def test_unread_state_flattens_to_what_it_came_from():
  state = _state()
  leaves, treedef = jax.tree.flatten(state)
  out = jax.tree.unflatten(treedef, leaves)
  again, treedef2 = jax.tree.flatten(out)
  assert treedef2 == treedef and all(a is b for a, b in zip(again, leaves, strict=True))


def test_writes_after_read_are_flattened():
  out = jax.tree.map(lambda x: x, _state())
  out["layers"][1]["w"].value = 5.0
  out["extra"] = nnx.Param(1.0)
  leaves = jax.tree.leaves(out)
  assert len(leaves) == 5 and leaves[1] == 1.0 and leaves[3] == 5.0  # bn, extra, layers...


def test_is_leaf_sees_the_variables():
  state = _state()
  found = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, nnx.Variable))
  assert found[0] is state.bn.mean and found[1] is state["layers"][0]["w"]
  del state["raw"]
  out = jax.tree.map(lambda v: v.replace(v.value + 1), state,
                     is_leaf=lambda x: isinstance(x, nnx.Variable))
  assert out["layers"][1]["w"].value == 3.0 and out["layers"][0]["w"].sharding == ("x",)


def test_mixed_keys_keep_state_order():
  state = nnx.State({"d": {"b": nnx.Param(1.0), 0: nnx.Param(2.0), "a": nnx.Param(3.0)}})
  assert jax.tree.leaves(state) == [2.0, 3.0, 1.0]  # ints first, then names
  out = jax.tree.map(lambda x: x, state)
  assert jax.tree.structure(out) == jax.tree.structure(state)
  assert [out.d[k].value for k in (0, "a", "b")] == [2.0, 3.0, 1.0]


def test_unread_sub_state_in_another_state():
  inner = jax.tree.map(lambda x: x + 1, nnx.State({"w": nnx.Param(1.0)}))
  outer = nnx.State({"inner": inner, "v": nnx.Param(0.0)})
  assert jax.tree.structure(outer) == jax.tree.structure(
    nnx.State({"inner": {"w": nnx.Param(0.0)}, "v": nnx.Param(0.0)}))
  assert jax.tree.leaves(outer) == [2.0, 0.0]


def test_jit_round_trip_compiles_once():
  traces = []

  @jax.jit
  def step(state):
    traces.append(1)
    return jax.tree.map(lambda x: x + 1, state)

  state = _state()
  for _ in range(3):
    state = step(state)
  assert len(traces) == 1
  np.testing.assert_allclose(state["layers"][1]["w"].value, 5.0)
  assert state["layers"][0]["w"].sharding == ("x",)


def test_functional_split_merge_under_jit():
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)

  @jax.jit
  def step(state):
    m = nnx.merge(graphdef, state)
    m.bias.value = m.bias.value + 1.0
    return nnx.state(m)

  out = step(step(state))
  np.testing.assert_allclose(out["bias"].value, state["bias"].value + 2.0)
  np.testing.assert_allclose(nnx.merge(graphdef, out).kernel.value, model.kernel.value)


class _Stack(nnx.Module):
  def __init__(self):
    self.layers = nnx.List([nnx.Linear(2, 2, rngs=nnx.Rngs(0))])
    self.note = "static"
    self.extra = _Box(1.0)


class _Box:
  def __init__(self, v):
    self.v = v


def test_module_key_paths_and_treedef():
  m = _Stack()
  flat, treedef = jax.tree_util.tree_flatten_with_path(m)
  assert treedef == jax.tree.structure(m)
  assert [p for p, _ in flat] == [
    (GetAttrKey("layers"), jax.tree_util.SequenceKey(0), GetAttrKey("bias"), GetAttrKey("value")),
    (GetAttrKey("layers"), jax.tree_util.SequenceKey(0), GetAttrKey("kernel"),
     GetAttrKey("value")),
  ]
  out = jax.tree.unflatten(treedef, [leaf for _, leaf in flat])
  assert out.note == "static" and out.extra is m.extra


def test_registered_data_type_becomes_a_child():
  class Holder:
    def __init__(self, v):
      self.v = v
  jax.tree_util.register_pytree_node(Holder, lambda h: ((h.v,), None), lambda _, c: Holder(*c))

  class M(nnx.Module):
    def __init__(self):
      self.h = Holder(jnp.ones(1))

  assert jax.tree.leaves(M()) == []  # an unregistered class is static config
  nnx.register_data_type(Holder)
  np.testing.assert_array_equal(jax.tree.leaves(M())[0], jnp.ones(1))
