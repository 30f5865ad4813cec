"""Flax's signatures of the split / merge / update contexts and of GraphDef."""

import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import nnx


def _model():
  return nnx.Linear(2, 3, rngs=nnx.Rngs(0))


def test_graphdef_takes_flax_parameter_names():
  gd, state = nnx.split(_model())
  again = nnx.GraphDef(nodes=gd.nodes, attributes=gd.attributes, num_leaves=gd.num_leaves)
  assert again == gd and hash(again) == hash(gd)
  assert again.num_refs == gd.num_refs == 3  # the Linear and its two Params
  assert gd.num_leaves == 2 and gd.attributes == (("bias",), ("kernel",))
  np.testing.assert_array_equal(nnx.merge(again, state).kernel.value, state["kernel"].value)
  with pytest.raises(ValueError, match="num_leaves"):
    nnx.GraphDef(gd.nodes, gd.attributes, 5)


def test_splits_in_one_context_share_node_indices():
  a = _model()
  b = nnx.Dict(inner=a, w=nnx.Param(jnp.ones(1)))
  with nnx.split_context() as ctx:
    g1, s1 = ctx.split(a)
    g2, s2 = ctx.split(b)  # reaches `a` again: a ref, not a second copy of its state
    g3, s3 = ctx.split(a)
  assert g3.nodes == ("ref", 0) and len(s3) == 0
  assert set(s2) == {"w"}
  with nnx.merge_context() as ctx:
    a2 = ctx.merge(g1, s1)
    b2 = ctx.merge(g2, s2)
    a3 = ctx.merge(g3, s3)
  assert b2["inner"] is a2 and a3 is a2 and a2 is not a
  np.testing.assert_array_equal(a2.kernel.value, a.kernel.value)


def test_split_context_flatten_and_merge_context_unflatten():
  m = _model()
  with nnx.split_context() as ctx:
    gd, params = ctx.flatten(m, nnx.Param)
  assert [p for p, _ in params] == [("bias",), ("kernel",)]
  assert params[1][1] is m.kernel  # the Variables themselves, as nnx.flatten gives them
  with nnx.split_context() as ctx:
    gd2, leaves = ctx.flatten(m, with_paths=False)
    with pytest.raises(ValueError, match="filters"):
      ctx.flatten(m, nnx.Param, with_paths=False)
  assert leaves == [m.bias, m.kernel]
  with nnx.merge_context() as ctx:
    from_pairs = ctx.unflatten(gd, params)
  with nnx.merge_context() as ctx:
    from_list = ctx.unflatten(gd2, leaves)
  for out in (from_pairs, from_list):
    assert out is not m and out.kernel is not m.kernel  # merged copies
    np.testing.assert_array_equal(out.kernel.value, m.kernel.value)


def test_update_context_records_through_flatten_end_and_unflatten_end():
  m = nnx.Dict(a=nnx.Param(jnp.zeros(2)))
  with nnx.update_context("t") as uctx:
    with nnx.split_context("t") as ctx:
      assert ctx.is_inner is False
      gd, st = ctx.split(m)
    assert uctx.outer_index_outer_ref == {0: m, 1: m["a"]}
    with nnx.merge_context("t", inner=True) as ctx:
      inner = ctx.merge(gd, st)
    assert uctx.outer_index_inner_ref[0] is inner
    inner.b = nnx.Param(jnp.ones(1))  # a structural change on the inner copy
    inner["a"].value = jnp.full(2, 3.0)
    with nnx.split_context("t") as ctx:
      assert ctx.is_inner is True
      gd, st = ctx.split(inner)
    assert uctx.inner_ref_outer_index is None  # cleared by the inner split's end
    with nnx.merge_context("t", inner=False) as ctx:
      out = ctx.merge(gd, st)
  assert out is m and "b" in m
  np.testing.assert_array_equal(m["a"].value, jnp.full(2, 3.0))
  ctx_args = nnx.UpdateContext("x", None, None, None, None, None)
  assert ctx_args == uctx and ctx_args.static_cache is None


def test_merge_context_with_a_tag_needs_inner():
  m = nnx.Dict(a=nnx.Param(1.0))
  with nnx.update_context("u"):
    gd, st = nnx.split(m)
    with pytest.raises(ValueError, match="inner"):
      with nnx.merge_context("u") as ctx:
        ctx.merge(gd, st)
