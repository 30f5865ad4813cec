"""flaxen.traverse_util's deprecated Traversal objects."""

import collections
import dataclasses
import warnings

import pytest

from flaxen import core
from flaxen import traverse_util as tu

Pair = collections.namedtuple("Pair", "a b")


@dataclasses.dataclass(frozen=True)
class Box:
  x: object
  y: object = 0


@pytest.fixture(autouse=True)
def quiet():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    yield


def test_building_one_warns():
  with pytest.warns(DeprecationWarning, match="deprecated"):
    tu.TraverseItem("a")


def test_item_attr_each_compose():
  data = {"layers": [Box(1, 2), Box(3, 4)], "n": 5}
  t = tu.t_identity["layers"].each().x
  assert list(t.iterate(data)) == [1, 3]
  out = t.update(lambda v: v * 10, data)
  assert out == {"layers": [Box(10, 2), Box(30, 4)], "n": 5}
  assert data["layers"][0] == Box(1, 2)  # inputs are not mutated


def test_item_on_tuples_namedtuples_and_slices():
  assert tu.TraverseItem(1).update(lambda v: -v, (1, 2, 3)) == (1, -2, 3)
  assert tu.TraverseItem(slice(0, 2)).update(lambda v: -v, [1, 2, 3]) == [-1, -2, 3]
  assert tu.TraverseItem(-1).update(lambda v: -v, Pair(1, 2)) == Pair(1, -2)
  assert list(tu.TraverseItem(slice(1, None)).iterate([1, 2, 3])) == [2, 3]
  assert tu.t_identity.b.update(str, Pair(1, 2)) == Pair(1, "2")


def test_set_merge_filter_tree():
  data = {"a": 1, "b": [2, 3]}
  t = tu.t_identity["b"].each()
  assert t.set([7, 8], data) == {"a": 1, "b": [7, 8]}
  with pytest.raises(ValueError, match="Not enough"):
    t.set([7], data)
  with pytest.raises(ValueError, match="Too many"):
    t.set([7, 8, 9], data)
  both = tu.t_identity.merge(tu.TraverseItem("a"), tu.TraverseItem("b").each())
  assert list(both.iterate(data)) == [1, 2, 3]
  assert both.update(lambda v: v + 1, data) == {"a": 2, "b": [3, 4]}
  odd = tu.t_identity.tree().filter(lambda v: v % 2 == 1)
  assert list(odd.iterate(data)) == [1, 3]
  assert tu.TraverseTree().update(lambda v: v * 2, data) == {"a": 2, "b": [4, 6]}


def test_model_param_traversal_filters_by_path():
  params = {"Dense_0": {"kernel": 1, "bias": 2}, "Dense_1": {"kernel": 3, "bias": 4}}
  kernels = tu.ModelParamTraversal(lambda path, _: path.endswith("/kernel"))
  assert list(kernels.iterate(params)) == [1, 3]
  out = kernels.update(lambda v: v * 100, params)
  assert out == {"Dense_0": {"kernel": 100, "bias": 2}, "Dense_1": {"kernel": 300, "bias": 4}}
  frozen = kernels.update(lambda v: 0, core.freeze(params))
  assert isinstance(frozen, core.FrozenDict) and frozen["Dense_1"]["kernel"] == 0
