"""flaxen.traverse_util: flatten_dict / unflatten_dict / path_aware_map."""

import pickle
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import traverse_util
from flaxen.traverse_util import empty_node, flatten_dict, path_aware_map, unflatten_dict

PARAMS = {"Dense_0": {"kernel": 1, "bias": 2}, "Block": {"Dense_1": {"kernel": 3}}, "scale": 4}


def test_flatten_to_tuple_paths_in_order():
  assert flatten_dict(PARAMS) == {
    ("Dense_0", "kernel"): 1, ("Dense_0", "bias"): 2, ("Block", "Dense_1", "kernel"): 3,
    ("scale",): 4,
  }
  assert list(flatten_dict(PARAMS)) == [
    ("Dense_0", "kernel"), ("Dense_0", "bias"), ("Block", "Dense_1", "kernel"), ("scale",)
  ]


def test_flatten_and_unflatten_with_separator():
  flat = flatten_dict(PARAMS, sep="/")
  assert flat["Block/Dense_1/kernel"] == 3
  assert unflatten_dict(flat, sep="/") == PARAMS
  assert unflatten_dict(flatten_dict(PARAMS)) == PARAMS


def test_non_string_keys_are_kept_in_tuples_and_stringified_with_sep():
  xs = {0: {1: "a"}, (2, 3): "b"}
  assert flatten_dict(xs) == {(0, 1): "a", ((2, 3),): "b"}
  assert flatten_dict(xs, sep=".") == {"0.1": "a", "(2, 3)": "b"}


def test_empty_nodes_dropped_by_default_and_kept_on_request():
  xs = {"a": {}, "b": {"c": {}, "d": 1}}
  assert flatten_dict(xs) == {("b", "d"): 1}
  flat = flatten_dict(xs, keep_empty_nodes=True)
  assert flat == {("a",): empty_node, ("b", "c"): empty_node, ("b", "d"): 1}
  assert unflatten_dict(flat) == xs
  assert flatten_dict({}, keep_empty_nodes=True) == {}


def test_empty_node_does_not_erase_a_subtree():
  assert unflatten_dict({("a", "b"): 1, ("a",): empty_node}) == {"a": {"b": 1}}


def test_empty_node_survives_pickle():
  assert pickle.loads(pickle.dumps(empty_node)) is empty_node
  assert repr(empty_node) == "empty_node"


def test_is_leaf_receives_path_and_value():
  calls = []

  def is_leaf(path, value):
    calls.append(path)
    return path == ("Block",)

  flat = flatten_dict(PARAMS, is_leaf=is_leaf)
  assert flat[("Block",)] == {"Dense_1": {"kernel": 3}}
  assert ("Block", "Dense_1") not in calls
  assert calls[:2] == [(), ("Dense_0",)]


def test_is_leaf_true_at_root_keeps_the_whole_dict():
  assert flatten_dict(PARAMS, is_leaf=lambda p, x: True) == {(): PARAMS}


def test_other_mappings_are_flattened():
  xs = {"a": types.MappingProxyType({"b": 1})}
  assert flatten_dict(xs) == {("a", "b"): 1}


def test_flatten_rejects_non_mapping():
  with pytest.raises(TypeError, match="expects a mapping, got list"):
    flatten_dict([1, 2])


def test_unflatten_rejects_conflicting_paths():
  with pytest.raises(ValueError, match=r"\('a',\) is a leaf and also the prefix"):
    unflatten_dict({("a",): 1, ("a", "b"): 2})
  with pytest.raises(ValueError, match=r"\('a',\) is a leaf and also the prefix"):
    unflatten_dict({("a", "b"): 2, ("a",): 1})


def test_unflatten_rejects_string_keys_without_sep():
  with pytest.raises(TypeError, match="pass sep="):
    unflatten_dict({"a/b": 1})


def test_path_aware_map():
  out = path_aware_map(lambda path, x: f"{'/'.join(path)}={x}", {**PARAMS, "empty": {}})
  assert out == {
    "Dense_0": {"kernel": "Dense_0/kernel=1", "bias": "Dense_0/bias=2"},
    "Block": {"Dense_1": {"kernel": "Block/Dense_1/kernel=3"}},
    "scale": "scale=4",
    "empty": {},
  }


def test_module_exports():
  assert set(traverse_util.__all__) >= {"flatten_dict", "unflatten_dict", "path_aware_map",
                                        "empty_node"}


keys = st.text("abc_", min_size=1, max_size=3)
nested = st.recursive(
  st.dictionaries(keys, st.integers(), max_size=3),
  lambda children: st.dictionaries(keys, children | st.integers(), max_size=3),
  max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(nested)
def test_round_trip_with_empty_nodes(xs):
  assert unflatten_dict(flatten_dict(xs, keep_empty_nodes=True)) == xs
  assert unflatten_dict(flatten_dict(xs, keep_empty_nodes=True, sep="/"), sep="/") == xs
  assert path_aware_map(lambda p, x: x, xs) == xs
