"""as_abstract / get_abstract_model / use_eager_sharding against hand-built shardings."""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from flaxen import nnx

_DEVICES = len(jax.devices())


def _mesh():
  return jax.make_mesh((1, _DEVICES), ("a", "b"), axis_types=(jax.sharding.AxisType.Auto,) * 2)


def _linear():
  return nnx.Linear(4, 8, rngs=nnx.Rngs(0), kernel_metadata={"out_sharding": ("a", "b")})


def test_as_abstract_without_mesh_has_no_sharding():
  abstract = nnx.as_abstract(nnx.eval_shape(lambda: nnx.Linear(4, 8, rngs=nnx.Rngs(0))))
  assert abstract.kernel.value == jax.ShapeDtypeStruct((4, 8), jnp.float32)
  assert abstract.kernel.value.sharding is None


def test_as_abstract_under_mesh_and_per_variable_mesh():
  mesh = _mesh()
  with jax.set_mesh(mesh):
    abstract = nnx.as_abstract(nnx.eval_shape(_linear))
  assert abstract.kernel.value.sharding.spec == P("a", "b")
  assert abstract.kernel.value.sharding.mesh.axis_names == ("a", "b")
  own = nnx.as_abstract(nnx.eval_shape(lambda: nnx.Linear(
    4, 8, rngs=nnx.Rngs(0), kernel_metadata={"out_sharding": ("a", "b"), "mesh": mesh})))
  assert own.kernel.value.sharding == NamedSharding(mesh, P("a", "b"))


def test_as_abstract_leaves_the_model_alone():
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  abstract = nnx.as_abstract(model)
  assert isinstance(model.kernel.value, jax.Array)
  assert abstract.kernel.value.shape == (2, 3)


@pytest.mark.parametrize("graph", [True, False])
def test_get_abstract_model(graph):
  gd, state = nnx.get_abstract_model(_linear, _mesh(), graph=graph)
  kernel = state["kernel"].value
  assert isinstance(kernel, jax.ShapeDtypeStruct) and kernel.sharding.spec == P("a", "b")
  assert nnx.merge(gd, state).kernel.value.shape == (4, 8)


@pytest.mark.parametrize("eager", [True, False])
def test_use_eager_sharding(eager):
  mesh = _mesh()
  assert nnx.using_eager_sharding() is True
  with nnx.use_eager_sharding(eager), jax.set_mesh(mesh):
    assert nnx.using_eager_sharding() is eager
    w = nnx.Param(jnp.ones((4, 8)), out_sharding=(None, "b"))
    spec = getattr(w.value.sharding, "spec", P())
    assert (spec == P(None, "b")) is eager
  assert nnx.using_eager_sharding() is True


def test_out_sharding_as_named_sharding_lays_the_value_out():
  mesh = _mesh()
  ns = NamedSharding(mesh, P(None, "b"))
  v = nnx.Variable(jnp.ones((4, 4)), out_sharding=ns)
  assert v.value.sharding.is_equivalent_to(ns, 2)


def test_metadata_rules_combine_with_active_rules():
  mesh = _mesh()
  with jax.set_mesh(mesh), nnx.logical_axis_rules((("col-alias", "b"),)):
    w = nnx.Param(jnp.ones((2, 4)), sharding_names=("row-alias", "col-alias"),
                  sharding_rules=(("row-alias", "a"),))
  assert w.value.sharding.spec == P("a", "b")
