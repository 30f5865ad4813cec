"""The graph walk's shortcuts never change what split/merge/state/update return.

The walk keeps each Object's static attributes (cached while its structural version is
unchanged), classifies values once per class, answers class-only filters once per class,
merges by looking leaves up in the State as it rebuilds, and updates by walking the State
down the graph. Each test mutates or mixes what one of those shortcuts assumes.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flaxen import errors, nnx


class Layer(nnx.Module):
  def __init__(self, features: int = 2):
    self.features = features
    self.act = jnp.tanh
    self.w = nnx.Param(jnp.ones(features))
    self.count = nnx.BatchStat(jnp.zeros(()))


class Box:
  """A mutable static value, held by reference."""


class State2(NamedTuple):
  mu: dict
  step: nnx.Variable


def test_static_attribute_changes_are_seen_after_a_split():
  m = Layer()
  gd1, _ = nnx.split(m)
  m.features = 3
  gd2, state = nnx.split(m)
  assert gd1 != gd2 and nnx.merge(gd2, state).features == 3
  m.extra = "new"
  del m.act
  merged = nnx.merge(*nnx.split(m))
  assert merged.extra == "new" and not hasattr(merged, "act")
  assert nnx.graphdef(m) == nnx.graphdef(merged)  # the rebuilt object walks the same


def test_in_place_mutations_of_plain_containers_are_seen():
  m = Layer()
  m.sizes = [1, 2]  # static data: a plain list, walked every time
  m.box = Box()
  gd1 = nnx.graphdef(m)
  m.sizes.append(3)
  m.box.kept = 5
  merged = nnx.merge(*nnx.split(m))
  assert nnx.graphdef(m) != gd1 and merged.sizes == [1, 2, 3]
  assert merged.box is m.box and merged.box.kept == 5


def test_graph_set_drops_the_cached_layout():
  m = Layer()
  nnx.split(m)
  m._graph_set([("features", 7), ("w", nnx.Param(jnp.zeros(7)))])
  merged = nnx.merge(*nnx.split(m))
  assert merged.features == 7 and not hasattr(merged, "count")
  assert "_nnx_layout" not in dict(m._graph_items())


def test_class_filters_follow_first_match_order_and_path_filters_still_apply():
  m = nnx.Dict(a=Layer(), b=Layer())
  _, params, rest = nnx.split(m, nnx.Param, ...)
  assert {p for p, _ in params.flat_state()} == {("a", "w"), ("b", "w")}
  assert {p for p, _ in rest.flat_state()} == {("a", "count"), ("b", "count")}
  _, in_a, others = nnx.split(m, nnx.All(nnx.Param, nnx.PathContains("a")), ...)
  assert [p for p, _ in in_a.flat_state()] == [("a", "w")]
  assert len(others.flat_state()) == 3
  assert nnx.filterlib.by_type(nnx.filterlib.to_predicate((nnx.Param, nnx.Not(...))))
  assert not nnx.filterlib.by_type(nnx.filterlib.to_predicate(nnx.PathContains("a")))


def test_merge_of_several_states_and_of_plain_dicts():
  m = Layer()
  gd, params, stats = nnx.split(m, nnx.Param, nnx.BatchStat)
  merged = nnx.merge(gd, stats, params)
  np.testing.assert_array_equal(merged.w.value, m.w.value)
  plain = {"w": nnx.Param(jnp.full(2, 4.0)), "count": nnx.BatchStat(jnp.ones(()))}
  assert float(nnx.merge(gd, plain).count.value) == 1.0
  with pytest.raises(errors.MissingStateError, match="'count'"):
    nnx.merge(gd, params)
  with pytest.raises(errors.MissingStateError, match="'w'"):
    nnx.merge(gd, {"w": {"deeper": nnx.Param(1.0)}, "count": nnx.BatchStat(0.0)})


def test_update_through_pytrees_raw_arrays_and_new_paths():
  m = Layer()
  m.opt = (State2({"a": nnx.Variable(jnp.zeros(2))}, nnx.Variable(0)),)
  m.raw = jnp.zeros(2)
  inner = m.opt[0].mu["a"]
  nnx.update(m, {"opt": {0: {"mu": {"a": nnx.Variable(jnp.ones(2))}, "step": 3}},
                 "raw": jnp.ones(2), "w": nnx.Param(jnp.zeros(2), tag="x"),
                 "added": nnx.Param(jnp.ones(1))})
  assert m.opt[0].mu["a"] is inner and m.opt[0].step.value == 3
  np.testing.assert_array_equal(inner.value, jnp.ones(2))
  np.testing.assert_array_equal(m.raw, jnp.ones(2))
  assert m.w.tag == "x" and m.added.value.shape == (1,)
  with pytest.raises(errors.StatePathError):
    nnx.update(m, {"w": {"inside": nnx.Param(1.0)}})


def test_update_and_split_of_a_model_with_its_optimizer():
  model = nnx.List([Layer(), Layer()])
  opt = nnx.ModelAndOptimizer(model, optax.adam(0.1), wrt=nnx.Param)  # keeps .model
  gd, state = nnx.split((model, opt))
  ones = nnx.State({0: {0: {"w": nnx.Param(jnp.ones(2) * 5)}}})
  nnx.update((model, opt), state, ones)
  np.testing.assert_array_equal(model[0].w.value, jnp.ones(2) * 5)
  model2, opt2 = nnx.merge(gd, nnx.state((model, opt)))
  assert opt2.model is model2 and float(model2[0].w.value[0]) == 5.0
  assert len(nnx.state((model2, opt2)).flat_state()) == len(state.flat_state())


def test_state_of_everything_from_a_cached_walk_matches_the_walk():
  """``state``/``split``/``variables`` with no filter (or ``...`` first) build the State
  from the cached walk's leaves grouped by parent; the result is what the filtered path
  builds from the same walk."""
  from flaxen.nnx import graph, graphlib

  model = nnx.Sequential(Layer(2), nnx.Linear(2, 3, rngs=nnx.Rngs(0)), Layer(3))
  model.shared = model.layers[0].w  # met twice: kept once, at its first path
  def described(state):
    return [(p, type(v), v.get_metadata(), np.asarray(v.value).tolist())
            for p, v in state.flat_state()]

  for _ in range(2):  # the second call reuses the cached walk's grouping
    fast = nnx.state(model)
    slow = graphlib._states(graph.walk(model), (nnx.Any(...),), exhaustive=False)[0]
    assert described(fast) == described(slow)
  assert all(v is w for (_, v), (_, w) in zip(
    fast.flat_state(), nnx.variables(model).flat_state(), strict=True))
  own = dict(nnx.variables(model).flat_state())
  assert own[("layers", 0, "w")] is model.layers[0].w  # variables: the graph's own
  _, everything, nothing = nnx.split(model, ..., nnx.Param)
  assert described(everything) == described(fast) and len(nothing) == 0
