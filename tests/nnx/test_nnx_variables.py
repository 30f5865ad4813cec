"""nnx.Variable and its subclasses: value access, operators, metadata, hooks, pytree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx


def test_value_read_write_and_ellipsis_index():
  v = nnx.Param(jnp.zeros(3))
  v.value = jnp.arange(3.0)
  np.testing.assert_array_equal(v[...], [0.0, 1.0, 2.0])
  v[...] = jnp.ones(3)
  np.testing.assert_array_equal(v.value, jnp.ones(3))
  v[1] = 5.0
  np.testing.assert_array_equal(v.value, [1.0, 5.0, 1.0])
  assert v[1] == 5.0


def test_arithmetic_forwards_to_value():
  v = nnx.Param(jnp.array([1.0, 2.0]))
  np.testing.assert_array_equal(v + 1, [2.0, 3.0])
  np.testing.assert_array_equal(1 - v, [0.0, -1.0])
  np.testing.assert_array_equal(v * v, [1.0, 4.0])
  np.testing.assert_array_equal(-v, [-1.0, -2.0])
  np.testing.assert_array_equal(jnp.ones((2, 2)) @ v, [3.0, 3.0])
  assert (v > 1.5).tolist() == [False, True]
  np.testing.assert_array_equal(jnp.sin(v), jnp.sin(jnp.array([1.0, 2.0])))
  assert v.shape == (2,) and v.dtype == jnp.float32


def test_inplace_operator_updates_the_same_variable():
  v = nnx.BatchStat(jnp.array(1.0))
  alias = v
  v += 2.0
  assert v is alias
  assert float(alias.value) == 3.0


def test_metadata_attributes_and_set_metadata():
  v = nnx.Param(jnp.ones(2), sharding=("data",))
  assert v.sharding == ("data",)
  v.set_metadata(sharding=None, note="x")
  assert v.get_metadata() == {"sharding": None, "note": "x"}
  v.other = 3
  assert v.get_metadata()["other"] == 3
  with pytest.raises(errors.VariableMetadataError, match="missing"):
    v.missing
  with pytest.raises(AttributeError):
    v.missing


def test_replace_copies_with_new_value_and_metadata():
  v = nnx.Param(jnp.ones(2), tag="a")
  w = v.replace(jnp.zeros(2), tag="b")
  assert type(w) is nnx.Param and w is not v
  np.testing.assert_array_equal(w.value, jnp.zeros(2))
  assert (w.tag, v.tag) == ("b", "a")


def test_metadata_hooks_and_subclass_methods():
  calls = []
  v = nnx.Variable(1.0, on_get_value=lambda var, x: x * 10,
                   on_set_value=lambda var, x: calls.append(x) or x + 1)
  assert v.value == 10.0
  v.value = 2.0
  assert calls == [2.0] and v.raw_value == 3.0 and v.value == 30.0

  class Doubled(nnx.Variable):
    def on_create_value(self, value):
      return value * 2

    def on_get_value(self, value):
      return value + 1

  d = Doubled(3.0)
  assert (d.raw_value, d.value) == (6.0, 7.0)


def test_user_subclass_is_a_pytree_keeping_type_and_metadata():
  class Lora(nnx.Param):
    pass

  v = Lora(jnp.ones(2), rank=4)
  out = jax.tree.map(lambda x: x * 3, v)
  assert type(out) is Lora and out.rank == 4
  np.testing.assert_array_equal(out.value, 3 * jnp.ones(2))
  leaves, treedef = jax.tree_util.tree_flatten_with_path(v)
  assert jax.tree_util.keystr(leaves[0][0]) == ".value"


def test_variables_hash_and_compare_by_identity():
  a, b = nnx.Param(1.0), nnx.Param(1.0)
  assert a == a and not (a == b)
  assert len({a, b}) == 2


def test_jax_functions_accept_variables():
  v = nnx.Param(jnp.ones((2, 2)))
  np.testing.assert_array_equal(jnp.sum(v), 4.0)
  np.testing.assert_array_equal(np.asarray(v), np.ones((2, 2)))
