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
  assert meta.remove_axis(tree, 1, {"partition_name": None})["w"].names == ("a",)
  # A transform that maps an axis must name it, as in Flax.
  with pytest.raises(errors.PartitioningUnspecifiedError):
    meta.add_axis(tree, 0, {})
  with pytest.raises(errors.PartitioningUnspecifiedError):
    meta.remove_axis(tree, 0, {})


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


# ------------------------------------------- Flax's remaining core / meta / frozen names


def test_map_axis_meta_and_nnx_metadata_round_trip():
  from flaxen.core import map_axis_meta
  from flaxen.core import meta as m

  box = m.Partitioned(jnp.ones((2, 3)), ("a", "b"))
  tree = {"w": box, "n": 1}
  out = map_axis_meta(lambda b: b.replace(names=("c", "d")), tree)
  assert out["w"].names == ("c", "d") and out["n"] == 1
  md = box.to_nnx_metadata()
  back = m.Partitioned.from_nnx_metadata({**md, "value": box.value})
  assert back.names == ("a", "b") and back.value is box.value
  assert m.get_global_mesh() is None and not m.global_mesh_defined()


def test_frozen_views_and_core_aliases():
  import flaxen.linen as nn
  from flaxen import core
  from flaxen.core.frozen_dict import FrozenKeysView, FrozenValuesView

  fd = core.freeze({"b": 1, "a": {"c": 2}})
  assert isinstance(fd.keys(), FrozenKeysView) and list(fd.keys()) == ["b", "a"]
  assert isinstance(fd.values(), FrozenValuesView) and list(fd.values())[0] == 1
  assert core.broadcast is nn.broadcast
  assert core.unbox({"w": core.meta.Partitioned(3, ("x",))}) == {"w": 3}
