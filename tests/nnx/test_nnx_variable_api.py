"""Variable members as Flax 0.12 has them, hooks through VariableMetadata, var_defaults,
transform_metadata."""

import jax.numpy as jnp
import numpy as np

from flaxen import nnx


def test_get_set_value_with_index_and_raw_access():
  v = nnx.Param(jnp.arange(3.0))
  assert float(v.get_value(index=1)) == 1.0
  v.set_value(9.0, index=0)
  np.testing.assert_array_equal(v[...], [9.0, 1.0, 2.0])
  v.set_raw_value(jnp.zeros(2))
  assert v.get_raw_value().shape == v.shape == (2,)
  assert v.var_type is nnx.Param and v() is v.value


def test_hooks_from_variable_metadata():
  log = []
  meta = nnx.VariableMetadata(
    jnp.ones(2), on_set_value=lambda var, x: x * 2, on_get_value=lambda var, x: x + 1,
    on_create_value=lambda var, x: log.append("create") or x, metadata={"tag": "t"})
  v = nnx.Param(meta)
  assert log == ["create"] and v.tag == "t"
  np.testing.assert_array_equal(v.get_raw_value(), [1.0, 1.0])
  np.testing.assert_array_equal(v.get_value(), [2.0, 2.0])  # on_get_value adds 1
  v.set_value(jnp.ones(2))
  np.testing.assert_array_equal(v.get_raw_value(), [2.0, 2.0])  # on_set_value doubles


def test_metadata_members_and_copies():
  v = nnx.Param(jnp.ones(1), out_sharding=("a",))
  assert v.get_metadata("out_sharding") == ("a",) and v.get_metadata("x", 3) == 3
  assert v.has_metadata("out_sharding") and v.sharding_names == ("a",)
  c = v.copy(jnp.zeros(1), extra=1)
  assert c.extra == 1 and not v.has_metadata("extra") and float(c[0]) == 0.0
  v.del_metadata("out_sharding")
  assert not v.has_metadata("out_sharding")
  v.copy_from(c)
  assert v.extra == 1 and float(v[0]) == 0.0
  w = nnx.Param.from_metadata(jnp.ones(2), {"k": 1})
  assert isinstance(w, nnx.Param) and w.k == 1


def test_add_remove_axis_updates_names_and_calls_hooks():
  calls = []
  v = nnx.Param(jnp.ones((2, 3)), out_sharding=("a", "b"), eager_sharding=False,
                on_add_axis=lambda var, i, name: calls.append(("add", i, name)))
  v.remove_axis(0, "a")
  assert v.out_sharding == ("b",)
  v.add_axis(1, "c")
  assert v.out_sharding == ("b", "c") and calls == [("add", 1, "c")]


def test_transform_metadata_round_trip():
  v = nnx.Param(jnp.array(0), out_sharding=("din", "dout"), eager_sharding=False)

  @nnx.transform_metadata(in_axes=0, out_axes=1, partition="din")
  def f(v):
    assert v.out_sharding == ("dout",)
    v[...] += 1
    return nnx.Param(jnp.array(10), out_sharding=("dmid", "dout"), eager_sharding=False)

  v2 = f(v)
  assert v.out_sharding == ("din", "dout") and int(v[...]) == 1
  assert v2.out_sharding == ("dmid", "din", "dout")


def test_var_defaults_context():
  assert nnx.var_defaults.current()["hijax"] is False
  with nnx.var_defaults(hijax=True):
    assert nnx.var_defaults.current()["hijax"] is True
  assert nnx.var_defaults.current()["hijax"] is False


def test_equality_with_plain_values_compares_the_value():
  v = nnx.Variable(2.0)
  assert v == 2.0 and v != 3.0 and not (v != 2.0)
  w = nnx.Variable(2.0)
  assert v != w and v == v  # two Variables: identity, as in States and lists
  assert v in [w, v] and [v].index(v) == 0
  assert bool((nnx.Param(jnp.arange(3)) == jnp.arange(3)).all())


def test_typevar_a_is_exported():
  class Box(nnx.Variable[nnx.A]):
    pass

  assert Box(1).value == 1
