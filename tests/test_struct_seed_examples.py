"""The code examples of seeds 000 (flax.struct) and 001 (register_dataclass), run on flaxen.

Each test is one example with ``flax`` replaced by ``flaxen``; the assertions check what the
seed's prose says the example shows.
"""

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, struct

# ----------------------------------------------------------------------- seed 000


def test_seed000_dataclass_model():
  @struct.dataclass
  class Model:
    params: Any
    # use pytree_node=False to indicate an attribute should not be touched
    # by Jax transformations.
    apply_fn: Callable = struct.field(pytree_node=False)

    def __apply__(self, *args):
      return self.apply_fn(*args)

  params = {}
  params_b = {}
  apply_fn = lambda v, x: x
  model = Model(params, apply_fn)

  with pytest.raises(errors.FrozenStructError):
    model.params = params_b  # Model is immutable. This will raise an error.
  model_b = model.replace(params=params_b)  # Use the replace method instead.
  assert model_b.params is params_b and model_b.apply_fn is apply_fn

  model = Model(params, apply_fn)
  loss_fn = lambda model: 3.0
  model_grad = jax.grad(loss_fn)(model)
  assert isinstance(model_grad, Model) and model_grad.apply_fn is apply_fn
  assert model.__apply__(None, 5) == 5


def test_seed000_pytreenode_model():
  class Model(struct.PyTreeNode):
    params: Any
    apply_fn: Callable = struct.field(pytree_node=False)

    def __apply__(self, *args):
      return self.apply_fn(*args)

  params = {}
  params_b = {}
  apply_fn = lambda v, x: x
  model = Model(params, apply_fn)
  with pytest.raises(errors.FrozenStructError):
    model.params = params_b
  model_b = model.replace(params=params_b)
  assert model_b.params is params_b

  model = Model(params, apply_fn)
  loss_fn = lambda model: 3.0
  model_grad = jax.grad(loss_fn)(model)
  assert isinstance(model_grad, Model)


def test_seed000_grad_with_real_params():
  class Model(struct.PyTreeNode):
    params: Any
    apply_fn: Callable = struct.field(pytree_node=False)

  model = Model({"w": jnp.array(2.0)}, lambda p, x: p["w"] * x)
  grads = jax.grad(lambda m: m.apply_fn(m.params, 3.0))(model)
  assert float(grads.params["w"]) == 3.0


def test_seed000_smart_constructor_as_written_raises():
  # The seed's create() reads `direction` before assigning it.
  @struct.dataclass
  class DirectionAndScaleKernel:
    direction: jax.Array
    scale: jax.Array

    @classmethod
    def create(cls, kernel):
      scale = jax.numpy.linalg.norm(kernel, axis=0, keepdims=True)
      direction = direction / scale  # noqa: F821
      return cls(direction, scale)

  with pytest.raises(UnboundLocalError, match="direction"):
    DirectionAndScaleKernel.create(jnp.ones((2, 3)))


def test_seed000_smart_constructor_intended():
  @struct.dataclass
  class DirectionAndScaleKernel:
    direction: jax.Array
    scale: jax.Array

    @classmethod
    def create(cls, kernel):
      scale = jax.numpy.linalg.norm(kernel, axis=0, keepdims=True)
      direction = kernel / scale
      return cls(direction, scale)

  kernel = jnp.array([[3.0, 0.0], [4.0, 2.0]])
  k = DirectionAndScaleKernel.create(kernel)
  np.testing.assert_allclose(k.scale, [[5.0, 2.0]])
  np.testing.assert_allclose(k.direction * k.scale, kernel, rtol=1e-6)
  # The plain constructor stays what jax.tree_util uses.
  doubled = jax.tree.map(lambda x: 2 * x, k)
  assert isinstance(doubled, DirectionAndScaleKernel)
  np.testing.assert_allclose(doubled.scale, [[10.0, 4.0]])


# ----------------------------------------------------------------------- seed 001


def test_seed001_explicit_fields():
  @partial(jax.tree_util.register_dataclass, data_fields=["x", "y"], meta_fields=["op"])
  @dataclass
  class MyStruct:
    x: jax.Array
    y: jax.Array
    op: str

  m = MyStruct(x=jnp.ones(3), y=jnp.arange(3), op="add")
  # (a class defined in a test has a qualified name; the seed's is defined at top level)
  assert repr(m).endswith(
    "MyStruct(x=Array([1., 1., 1.], dtype=float32), y=Array([0, 1, 2], dtype=int32), op='add')"
  )


def _static_metadata_struct():
  @jax.tree_util.register_dataclass
  @dataclass
  class MyStruct:
    x: jax.Array  # defaults to non-static data field
    y: jax.Array  # defaults to non-static data field
    op: str = dc_field(metadata=dict(static=True))  # marked as static meta field.

  return MyStruct


def test_seed001_static_metadata_flatten_and_jit():
  MyStruct = _static_metadata_struct()
  m = MyStruct(x=jnp.ones(3), y=jnp.arange(3), op="add")
  leaves, treedef = jax.tree.flatten(m)
  assert [a.tolist() for a in leaves] == [[1.0, 1.0, 1.0], [0, 1, 2]]
  assert str(treedef) == "PyTreeDef(CustomNode(MyStruct[('add',)], [*, *]))"
  assert repr(jax.tree.unflatten(treedef, leaves)) == repr(m)

  @jax.jit
  def compiled_func(m):
    if m.op == "add":
      return m.x + m.y
    else:
      raise ValueError(f"{m.op=}")

  np.testing.assert_array_equal(compiled_func(m), jnp.array([1.0, 2.0, 3.0]))
  with pytest.raises(ValueError, match="m.op='sub'"):
    compiled_func(MyStruct(x=jnp.ones(3), y=jnp.arange(3), op="sub"))


def test_seed001_same_struct_with_flaxen():
  @struct.dataclass
  class MyStruct:
    x: jax.Array
    y: jax.Array
    op: str = struct.field(pytree_node=False)

  m = MyStruct(x=jnp.ones(3), y=jnp.arange(3), op="add")
  leaves, treedef = jax.tree.flatten(m)
  assert str(treedef) == "PyTreeDef(CustomNode(MyStruct[('add',)], [*, *]))"
  assert jax.jit(lambda m: m.x + m.y if m.op == "add" else m.x)(m).tolist() == [1.0, 2.0, 3.0]


# ------------------------------------------------ flaxen structs and JAX dataclasses


def test_struct_and_register_dataclass_nest_inside_each_other_through_jit():
  MyStruct = _static_metadata_struct()

  class Outer(struct.PyTreeNode):
    inner: Any
    scale: float = struct.field(pytree_node=False, default=2.0)

  @jax.tree_util.register_dataclass
  @dataclass
  class Wrapper:
    payload: Any
    tag: str = dc_field(default="w", metadata=dict(static=True))

  tree = Wrapper(Outer(MyStruct(x=jnp.ones(2), y=jnp.arange(2.0), op="add"), scale=3.0))

  @jax.jit
  def f(t):
    inner = t.payload.inner
    total = (inner.x + inner.y) * t.payload.scale
    return t.payload.replace(inner=MyStruct(x=total, y=inner.y, op=inner.op + t.tag))

  out = f(tree)
  assert isinstance(out, Outer) and isinstance(out.inner, MyStruct)
  assert out.scale == 3.0 and out.inner.op == "addw"
  np.testing.assert_array_equal(out.inner.x, [3.0, 6.0])
  paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
  assert paths == [".payload.inner.x", ".payload.inner.y"]
  grads = jax.grad(lambda t: jnp.sum(t.payload.inner.x) * t.payload.scale)(tree)
  np.testing.assert_array_equal(grads.payload.inner.x, [3.0, 3.0])
