"""Compiled builders (graph_builder) build what the interpreter builds, for every kind of
State that merge accepts, and leave errors to the interpreter.

From the second ``merge`` of a GraphDef on, its flat entries (a layer of statics and
Variables of its own, a dict of Variables) are built by compiled builders; each test here
merges at least twice so that the builders run.
"""

import copy
import gc
import pickle
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flaxen import errors, nnx
from flaxen.nnx import graph, graph_builder


class Layer(nnx.Module):
  def __init__(self, features: int = 2, **meta):
    self.features = features
    self.act = jnp.tanh
    self.options = {"mode": "fast"}  # a static dict: not flat, built by the interpreter
    self.w = nnx.Param(jnp.arange(features, dtype=jnp.float32), **meta)
    self.count = nnx.BatchStat(jnp.zeros(()))


class Flat(nnx.Module):
  def __init__(self, scale: float):
    self.scale = scale
    self.w = nnx.Param(jnp.full((2,), scale), sharding_names=("x",))
    self.b = nnx.BatchStat(jnp.zeros(()))


class Model(nnx.Module):
  def __init__(self):
    self.layers = [Flat(1.0), Flat(2.0), Flat(1.0)]
    self.shared = self.layers[0].w  # a Variable met twice: the root is not flat
    self.table = {"a": nnx.Param(jnp.ones(1)), "b": 3}


def merged_twice(graphdef, *states, copy=True):
  first = nnx.merge(graphdef, *states, copy=copy)
  second = nnx.merge(graphdef, *states, copy=copy)
  assert isinstance(graphdef._plan, dict), "the second merge should run the builders"
  return first, second


def assert_same_graph(a, b):
  ga, sa = nnx.split(a)
  gb, sb = nnx.split(b)
  assert ga == gb
  for (pa, va), (pb, vb) in zip(sa.flat_state(), sb.flat_state(), strict=True):
    assert pa == pb and type(va) is type(vb) and va.get_metadata() == vb.get_metadata()
    np.testing.assert_array_equal(va.value, vb.value)


def test_builders_rebuild_layers_lists_dicts_and_sharing():
  model = Model()
  graphdef, state = nnx.split(model)
  first, second = merged_twice(graphdef, state)
  assert_same_graph(first, second)
  assert_same_graph(model, second)
  assert second.shared is second.layers[0].w and second.shared is not model.shared
  assert second.layers[1].scale == 2.0 and second.table["b"] == 3
  assert second.layers[0].w.sharding_names == ("x",)
  assert len(graph_builder.plan(graphdef)) >= 3  # the three Flat layers at least
  _, shared = merged_twice(graphdef, state, copy=False)  # the builders reuse the Variables
  assert shared.shared is shared.layers[0].w is model.shared
  assert shared.layers[1].w is model.layers[1].w and shared.table["a"] is model.table["a"]


def test_built_objects_are_new_and_independent():
  graphdef, state = nnx.split(Flat(1.0))
  a, b = merged_twice(graphdef, state)
  assert a is not b and a.w is not b.w and a.w is not state["w"]
  b.w.set_metadata(sharding_names=("y",))
  b.w.value = jnp.zeros(2)
  assert a.w.sharding_names == ("x",) and state["w"].sharding_names == ("x",)
  np.testing.assert_array_equal(a.w.value, jnp.ones(2))
  b.scale = 5.0  # a static written on one copy only
  assert a.scale == 1.0


def test_static_containers_stay_tracked():
  graphdef, state = nnx.split(Layer())
  _, layer = merged_twice(graphdef, state)
  gd_before = nnx.graphdef(layer)
  layer.options["mode"] = "slow"  # in place: seen by the next split
  assert nnx.graphdef(layer) != gd_before


def test_raw_arrays_and_other_variable_types_as_leaves():
  graphdef, state = nnx.split(Flat(1.0))
  nnx.merge(graphdef, state)
  raw = nnx.State({"w": jnp.full((2,), 7.0), "b": jnp.ones(())})
  built = nnx.merge(graphdef, raw)  # values take the GraphDef's types and metadata
  assert type(built.w) is nnx.Param and built.w.sharding_names == ("x",)
  np.testing.assert_array_equal(built.w.value, jnp.full((2,), 7.0))
  other = nnx.State({"w": nnx.BatchStat(jnp.zeros(2), tag=1), "b": nnx.BatchStat(1.0)})
  built = nnx.merge(graphdef, other, copy=True)  # another type's Variable: value, metadata
  assert type(built.w) is nnx.Param and built.w.get_metadata() == {"tag": 1}
  assert nnx.merge(graphdef, other).w is other["w"]  # without copy: that Variable itself


def test_errors_come_from_the_interpreter():
  graphdef, state = nnx.split(Flat(1.0))
  merged_twice(graphdef, state)
  with pytest.raises(errors.MissingStateError, match="'b'"):
    nnx.merge(graphdef, nnx.State({"w": state["w"]}))
  with pytest.raises(errors.MissingStateError):
    nnx.merge(graphdef, nnx.State({"w": {"inner": state["w"]}, "b": state["b"]}))
  with pytest.raises(errors.UnexpectedStateError):
    nnx.merge(graphdef, nnx.State({**state, "extra": nnx.Param(jnp.ones(1))}))


@pytest.mark.parametrize("where", ["flat layer", "list", "root"])
def test_extra_leaves_are_found_at_any_depth(where):
  model = Model()
  graphdef, state = nnx.split(model)
  merged_twice(graphdef, state)
  extra = nnx.Param(jnp.ones(1))
  target = {"flat layer": state["layers"][1], "list": state["layers"], "root": state}[where]
  target["extra"] = extra
  with pytest.raises(errors.UnexpectedStateError, match="extra"):
    nnx.merge(graphdef, state)
  target["extra"] = nnx.State({"deeper": extra})  # a whole extra sub-State
  with pytest.raises(errors.UnexpectedStateError, match="deeper"):
    nnx.merge(graphdef, state)


def test_an_empty_sub_state_is_not_an_extra_leaf():
  graphdef, state = nnx.split(Model())
  merged_twice(graphdef, state)
  state["layers"][0]["nothing"] = nnx.State({})  # more keys, but no leaf: merge counts
  assert_same_graph(nnx.merge(graphdef, state), nnx.merge(*nnx.split(Model())))


def test_several_states_and_filters():
  model = Model()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  _, built = merged_twice(graphdef, params, rest)
  assert_same_graph(model, built)
  _, built = merged_twice(graphdef, rest, params)
  assert_same_graph(model, built)


def test_layers_of_one_shape_share_a_builder():
  graphdef, _ = nnx.split(nnx.List([Flat(1.0), Flat(1.0), Flat(2.0)]))
  plan = graph_builder.plan(graphdef)
  builders = [b for b, _ in plan.values() if b is not None]
  assert len(builders) == 3 and builders[0] is builders[1]
  assert builders[2] is not builders[0]  # another static value: another shape
  assert (None, 3) in plan.values()  # the List, built by the interpreter


class Payload:
  """A static value held by reference (hashed by identity)."""


def test_static_values_in_a_plan_die_with_the_graphdef():
  model = Flat(1.0)
  payload = model.payload = Payload()
  graphdef, state = nnx.split(model)
  merged_twice(graphdef, state)
  ref = weakref.ref(payload)
  del model, payload, graphdef, state
  gc.collect()  # the first collection runs the cached walk's weakref callback,
  gc.collect()  # the second frees what that entry held
  assert ref() is None


def test_optimizer_states_and_training_after_merge():
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  opt = nnx.ModelAndOptimizer(model, optax.adam(1e-2), wrt=nnx.Param)  # keeps .model
  graphdef, state = nnx.split((model, opt))
  _, (model2, opt2) = merged_twice(graphdef, state)
  assert opt2.model is model2
  x = jnp.ones((4, 3))

  def loss(m):
    return jnp.mean(m(x) ** 2)

  grads = nnx.grad(loss)(model2)
  opt2.update(model2, grads)
  assert int(opt2.step.value) == 1
  np.testing.assert_array_equal(model.kernel.value, nnx.split(model)[1]["kernel"].value)
  assert not np.allclose(model2.kernel.value, model.kernel.value)


def test_merge_inside_jit_uses_the_traced_values():
  model = Flat(1.0)
  graphdef, state = nnx.split(model)
  nnx.merge(graphdef, state)

  @jax.jit
  def double(state):
    m = nnx.merge(graphdef, state)
    m.w.value = m.w.value * 2  # Variables made in this trace may take its tracers
    return nnx.state(m)

  out = double(state)
  np.testing.assert_array_equal(out["w"].value, jnp.full((2,), 2.0))
  assert isinstance(graphdef._plan, dict)


def test_interpreter_and_builders_agree_on_a_model_with_an_optimizer():
  model = nnx.Sequential(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), nnx.BatchNorm(3, rngs=nnx.Rngs(1)))
  node = (model, nnx.Optimizer(model, optax.sgd(0.1, momentum=0.9), wrt=nnx.Param))
  graphdef, state = nnx.split(node)
  interpreted = graph.unflatten_state(graphdef, state)[0]
  built = graph_builder.build(graphdef, state, graph_builder.plan(graphdef))
  assert_same_graph(interpreted, built)


def test_copies_and_pickles_of_a_graphdef_leave_the_plan_behind():
  model = Model()
  graphdef, state = nnx.split(model)
  merged_twice(graphdef, state)
  for other in (copy.deepcopy(graphdef), copy.copy(graphdef),
                pickle.loads(pickle.dumps(graphdef))):
    assert other == graphdef and other._plan is None
    first, second = merged_twice(other, state)
    assert_same_graph(model, second)
    state["layers"][0]["extra"] = nnx.Param(jnp.ones(1))
    with pytest.raises(errors.UnexpectedStateError):
      nnx.merge(other, state)
    del state["layers"][0]["extra"]


def test_a_plan_of_another_graphdef_is_never_trusted():
  graphdef, state = nnx.split(Model())
  other = nnx.split(Model())[0]
  assert other == graphdef and other.root is not graphdef.root
  with pytest.raises(graph.Recount):  # merge_state falls back to the interpreter on this
    graph_builder.build(graphdef, state, graph_builder.plan(other))
