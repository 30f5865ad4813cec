"""FrozenDict and the dict helpers."""

import pickle

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flaxen import serialization
from flaxen.core import FrozenDict, copy, freeze, pop, pretty_repr, unfreeze

nested = st.recursive(
  st.integers(),
  lambda children: st.dictionaries(st.text("abc", min_size=1, max_size=3), children, max_size=3),
  max_leaves=10,
).filter(lambda x: isinstance(x, dict))


@given(nested)
def test_freeze_unfreeze_round_trip(d):
  fd = freeze(d)
  assert unfreeze(fd) == d and fd == d
  assert all(isinstance(v, FrozenDict) for v in fd.values() if isinstance(v, dict | FrozenDict))
  assert hash(fd) == hash(freeze(d))
  assert jax.tree.leaves(fd) == jax.tree.leaves(d)  # same key order: sorted


def test_immutable_and_helpers_leave_inputs_alone():
  fd = freeze({"a": 1, "b": {"c": 2}})
  with pytest.raises(ValueError, match="immutable"):
    fd["a"] = 3
  assert copy(fd, {"a": 5}) == {"a": 5, "b": {"c": 2}} and fd["a"] == 1
  rest, b = pop(fd, "b")
  assert isinstance(rest, FrozenDict) and dict(rest) == {"a": 1} and b == {"c": 2}
  plain = {"a": 1, "b": {"c": 2}}
  rest, a = pop(plain, "a")
  assert rest == {"b": {"c": 2}} and a == 1 and plain["a"] == 1
  new = copy(plain, {"z": 0})
  assert new["z"] == 0 and "z" not in plain and new["b"] is not plain["b"]
  u = unfreeze(fd)
  u["b"]["c"] = 9
  assert fd["b"]["c"] == 2


def test_pytree_with_keys_and_jit():
  fd = freeze({"b": jnp.ones(2), "a": {"x": jnp.zeros(1)}})
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(fd)[0]]
  assert paths == ["['a']['x']", "['b']"]
  out = jax.jit(lambda t: jax.tree.map(lambda v: v + 1, t))(fd)
  assert isinstance(out, FrozenDict) and out["b"].tolist() == [2.0, 2.0]


def test_pickle_repr_and_serialization():
  fd = freeze({"a": {"b": 1}})
  assert pickle.loads(pickle.dumps(fd)) == fd
  assert pretty_repr(fd) == "FrozenDict({\n    a: {\n        b: 1,\n    },\n})"
  assert serialization.to_state_dict(fd) == {"a": {"b": 1}}
  target = freeze({"w": jnp.zeros(2)})
  restored = serialization.from_bytes(target, serialization.to_bytes(freeze({"w": jnp.ones(2)})))
  assert isinstance(restored, FrozenDict) and restored["w"].tolist() == [1.0, 1.0]
