"""nnx.data / nnx.static / Data / Static / nnx.dataclass / register_data_type / has_data."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx


class Foo(nnx.Pytree):
  def __init__(self, a, b):
    self.a = nnx.data(a)
    self.b = nnx.static(b)


@pytest.mark.parametrize("graph", [True, False])
def test_marked_int_is_a_leaf_and_state(graph):
  foo = Foo(1, 2)
  assert jax.tree.leaves(foo) == [1]
  gd, state = nnx.split(foo, graph=graph)
  assert state["a"] == 1 and "b" not in state
  back = nnx.merge(gd, jax.tree.map(lambda x: x + 10, state))
  assert (back.a, back.b) == (11, 2)
  assert jax.tree.leaves(back) == [11]  # the mark survives the round trip


def test_jax_jit_sees_marked_leaves():
  out = jax.jit(lambda f: jax.tree.map(lambda x: x * 2, f))(Foo(jnp.float32(3), "s"))
  assert float(out.a) == 6.0 and out.b == "s"


def test_kind_sticks_until_marked_again():
  foo = Foo(1, 2)
  foo.a = "hello"  # still data
  assert jax.tree.leaves(foo) == ["hello"]
  foo.a = nnx.static(3)
  assert jax.tree.leaves(foo) == []
  with pytest.raises(errors.StaticDataError, match="Found data on value of type"):
    foo.a = [jnp.ones(1)]
  with pytest.raises(errors.StaticDataError, match="Found data in value of type"):
    nnx.static(jnp.ones(1))


def test_dataclass_field_specifiers_and_annotations():
  @nnx.dataclass
  class Bar(nnx.Pytree):
    a: int = nnx.data()
    b: int = nnx.static()
    c: jax.Array = nnx.data(default=None)

  bar = Bar(a=1, b=2, c=jnp.array(3.0))
  assert [np.asarray(x).item() for x in jax.tree.leaves(bar)] == [1, 3.0]
  with pytest.raises(errors.StaticDataError, match="unexpected data.*'b'"):
    Bar(a=1, b=jnp.ones(2))

  @dataclasses.dataclass
  class Baz(nnx.Pytree):
    a: nnx.Data[int]
    b: nnx.Static[int]

  assert jax.tree.leaves(Baz(5, 6)) == [5]


def test_register_data_type_and_has_data():
  class Box:
    pass

  assert not nnx.is_data(Box()) and nnx.is_data(jnp.ones(1)) and nnx.is_data(nnx.Param(1))
  assert nnx.has_data({"x": [1, jnp.ones(1)]}) and not nnx.has_data({"x": [1, "a"]})
  nnx.register_data_type(Box)
  assert nnx.is_data(Box())

  class Holder(nnx.Pytree):
    def __init__(self):
      self.box = Box()

  assert len(jax.tree.leaves(Holder())) == 1  # a registered type is data by default


def test_check_pytree():
  foo = Foo(1, 2)
  nnx.check_pytree(foo)
  foo.__dict__["b"] = jnp.ones(1)  # bypasses the check on assignment
  with pytest.raises(errors.StaticDataError):
    nnx.check_pytree(foo)


def test_marks_survive_tree_map_and_stay_out_of_the_structure():
  foo = Foo(1, 2)
  mapped = jax.tree.map(lambda x: x + 1, foo)
  assert jax.tree.leaves(mapped) == [2] and mapped.b == 2
  assert jax.tree.structure(mapped) == jax.tree.structure(foo)
  # a Module whose Variable is replaced by a plain value flattens like the original
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  axes = jax.tree.map(lambda v: 0, model, is_leaf=lambda x: isinstance(x, nnx.Variable))
  assert jax.tree.leaves(axes) == [0, 0]
  out = jax.vmap(lambda m: m.kernel.value.sum(), in_axes=(axes,))(
    jax.tree.map(lambda x: jnp.stack([x, x]), model))
  assert out.shape == (2,)
