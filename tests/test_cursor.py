"""cursor: edits through paths build new objects and never touch the original."""

import copy
import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flaxen.linen as nn
from flaxen import errors, struct
from flaxen.core import FrozenDict, freeze
from flaxen.cursor import AccessType, Cursor, ParentKey, cursor, is_named_tuple
from flaxen.training.train_state import TrainState


class Pair(NamedTuple):
  left: object
  right: object


@dataclasses.dataclass(frozen=True)
class Plain:
  a: object
  b: object = 0


@struct.dataclass
class Node:
  value: object
  children: tuple = ()
  name: str = struct.field(pytree_node=False, default="n")


def nested():
  return {"a": 1, "b": (2, [3, 4]), "c": FrozenDict({"d": Pair(5, Plain(6))}),
          "e": Node(7, (Node(8),))}


def test_build_applies_edits_and_leaves_the_original_untouched():
  obj = nested()
  before = copy.deepcopy(obj)
  c = cursor(obj)
  c["a"] = 10
  c["b"][1][0] = 30
  c["c"]["d"].right.b = 60
  c["c"]["d"][0] = 50  # a namedtuple by index
  c["e"].children[0].value = 80
  new = c.build()
  assert obj == before
  assert new["a"] == 10 and new["b"] == (2, [30, 4])
  assert isinstance(new["c"], FrozenDict) and new["c"]["d"] == Pair(50, Plain(6, 60))
  assert isinstance(new["e"], Node) and new["e"].children[0] == Node(80)
  assert new["e"].name == "n" and new["e"].value == 7
  # untouched branches are shared, edited ones are new objects
  assert new["e"] is not obj["e"] and new["b"][1] is not obj["b"][1]
  assert c.build() == new  # building twice gives the same result


def test_set_returns_the_edited_root():
  obj = {"a": 1, "b": (2, 3), "c": [4, 5]}
  assert cursor(obj)["b"][0].set(10) == {"a": 1, "b": (10, 3), "c": [4, 5]}
  assert cursor(obj)["c"][1].set(None) == {"a": 1, "b": (2, 3), "c": [4, None]}
  assert cursor(obj).set(5) == 5
  assert obj == {"a": 1, "b": (2, 3), "c": [4, 5]}


def test_train_state_params_and_static_fields():
  state = TrainState.create(apply_fn=lambda x: x, params={"w": jnp.ones(2)},
                            tx=optax.sgd(0.1))
  new_fn = lambda x: 2 * x
  c = cursor(state)
  c.params["w"] = jnp.zeros(2)
  c.apply_fn = new_fn
  new = c.build()
  assert isinstance(new, TrainState) and new.apply_fn is new_fn
  np.testing.assert_array_equal(new.params["w"], [0.0, 0.0])
  np.testing.assert_array_equal(state.params["w"], [1.0, 1.0])
  assert new.tx is state.tx


def test_augmented_assignment_and_operators_act_on_the_value():
  c = cursor({"step": 3, "w": np.array([1.0, 2.0])})
  c["step"] += 1
  c["w"] *= 2
  new = c.build()
  assert new["step"] == 4
  np.testing.assert_array_equal(new["w"], [2.0, 4.0])
  v = cursor({"x": 6})["x"]
  assert (v + 1, 1 + v, v - 1, 10 - v, v * 2, v / 4, v // 4, v % 4, v ** 2, -v, abs(v)) == (
    7, 7, 5, 4, 12, 1.5, 1, 2, 36, -6, 6)
  assert v == 6 and v < 7 and v >= 6 and v != 5 and round(v) == 6


def test_iteration_over_sequences():
  c = cursor(((1, 2), (3, 4)))
  for child in c:
    child[1] *= -1
  assert c.build() == ((1, -2), (3, -4))
  assert [x._obj for x in reversed(cursor([1, 2, 3]))] == [3, 2, 1]
  assert len(cursor([1, 2, 3])) == 3
  with pytest.raises(NotImplementedError):
    iter(cursor({"a": 1}))


def test_apply_update_walks_every_container_kind():
  obj = nested()
  before = copy.deepcopy(obj)
  seen = []

  def update(path, value):
    seen.append(path)
    return value * 100 if isinstance(value, int) and value % 2 == 0 else value

  new = cursor(obj).apply_update(update).build()
  assert obj == before
  assert new["b"] == (200, [3, 400]) and new["c"]["d"] == Pair(5, Plain(600, 0))
  assert new["e"].children[0].value == 800 and new["a"] == 1
  assert "c/d/right/a" in seen and "e/children/0/value" in seen and "" not in seen


def test_apply_update_stops_below_a_replaced_node():
  seen = []

  def update(path, value):
    seen.append(path)
    return {} if path == "params" else value

  new = cursor({"params": {"a": 1}, "x": 2}).apply_update(update).build()
  assert new == {"params": {}, "x": 2} and seen == ["params", "x"]


def test_find_and_find_all_on_linen_params():
  class Model(nn.Module):
    @nn.compact
    def __call__(self, x):
      for _ in range(3):
        x = nn.Dense(2)(x)
      return x

  params = Model().init(jax.random.key(0), jnp.ones((1, 2)))["params"]
  new = cursor(params).find(lambda path, _: "Dense_1" in path)["bias"].set(
    params["Dense_1"]["bias"] + 1)
  for layer in params:
    want = params[layer]["bias"] + (1 if layer == "Dense_1" else 0)
    np.testing.assert_array_equal(new[layer]["bias"], want)
  c = cursor(params)
  for dense in c.find_all(lambda path, _: path.startswith("Dense")):
    dense["kernel"] = jnp.zeros_like(dense["kernel"]._obj)
  built = c.build()
  assert all(float(jnp.abs(built[layer]["kernel"]).sum()) == 0 for layer in params)
  assert float(jnp.abs(params["Dense_0"]["kernel"]).sum()) > 0  # original untouched


def test_find_errors():
  c = cursor({"Dense_0": {"bias": 0}, "Dense_1": {"bias": 0}})
  with pytest.raises(errors.CursorFindError, match="no node"):
    c.find(lambda path, _: "Conv" in path)
  with pytest.raises(errors.CursorFindError, match="more than one") as info:
    c.find(lambda path, _: "Dense" in path)
  assert "['Dense_0']" in str(info.value)
  with pytest.raises(errors.TraverseTreeError):
    c.apply_update(None)


def test_bad_paths_raise_builtin_errors():
  with pytest.raises(KeyError, match="nope"):
    cursor({"a": 1})["nope"]
  with pytest.raises(AttributeError, match="zzz"):
    cursor(Plain(1)).zzz
  with pytest.raises(TypeError, match="index"):
    cursor(5)[0]


def test_frozen_dict_edit_and_helpers():
  fd = freeze({"a": {"b": 1}})
  new = cursor(fd)["a"]["b"].set(2)
  assert isinstance(new, FrozenDict) and new == freeze({"a": {"b": 2}}) and fd["a"]["b"] == 1
  assert is_named_tuple(Pair(1, 2)) and not is_named_tuple((1, 2))
  root = cursor([1])
  child = root[0]
  assert child._parent_key == ParentKey(root, 0, AccessType.ITEM) and isinstance(child, Cursor)
  assert "Cursor(" in repr(root) and str(child) == "1"


def test_a_cursor_can_be_copied():
  c = cursor({"a": [1, 2]})
  c["a"][0] = 5
  twin = copy.deepcopy(c)
  twin["a"][1] = 6
  assert c.build() == {"a": [5, 2]} and twin.build() == {"a": [5, 6]}
