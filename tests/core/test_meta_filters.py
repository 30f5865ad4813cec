"""Boxed metadata (flaxen.core.meta) and collection filters."""

import jax
import jax.numpy as jnp
import pytest

from flaxen import errors
from flaxen.core import DenyList, in_filter, meta, union_filters
from flaxen.core.filters import check_filter


def test_partitioned_box_is_transparent_to_jax():
  box = meta.Partitioned(jnp.ones((2, 3)), names=("a", None))
  assert jax.tree.leaves(box)[0].shape == (2, 3)
  doubled = jax.tree.map(lambda x: 2 * x, box)
  assert isinstance(doubled, meta.Partitioned) and doubled.names == ("a", None)
  tree = {"w": box, "b": jnp.zeros(3)}
  assert meta.unbox(tree)["w"] is box.value and meta.unbox(tree)["b"] is tree["b"]
  updated = meta.replace_boxed(tree, {"w": jnp.zeros((2, 3)), "b": jnp.ones(3)})
  assert isinstance(updated["w"], meta.Partitioned) and float(updated["w"].value.sum()) == 0.0
  assert meta.add_axis(tree, 0, {"partition_name": "layers"})["w"].names == ("layers", "a", None)
  assert meta.remove_axis(tree, 1, {})["w"].names == ("a",)


def test_axis_metadata_is_abstract():
  with pytest.raises(TypeError):
    meta.AxisMetadata()

  class Tag(meta.AxisMetadata):
    value: jax.Array

    def unbox(self):
      return self.value

    def replace_boxed(self, val):
      return self.replace(value=val)

    def add_axis(self, index, params):
      return self

    def remove_axis(self, index, params):
      return self

  assert meta.unbox([Tag(1.0), 2.0]) == [1.0, 2.0]


def test_filters():
  assert in_filter(True, "x") and not in_filter(False, "x")
  assert in_filter("params", "params") and not in_filter("params", "batch_stats")
  assert in_filter(["a", "b"], "b") and not in_filter(("a",), "b")
  assert in_filter(DenyList("intermediates"), "params")
  assert not in_filter(DenyList(["a", "b"]), "b")
  assert union_filters(DenyList("intermediates"), "intermediates") is True
  assert union_filters(["a"], "b") == ("a", "b")
  assert union_filters(False, "a") == "a"
  u = union_filters(DenyList(("a", "b")), ["a"])
  assert in_filter(u, "a") and not in_filter(u, "b")
  with pytest.raises(errors.InvalidFilterError):
    check_filter(3)
  with pytest.raises(errors.InvalidFilterError):
    in_filter(3.5, "x")
