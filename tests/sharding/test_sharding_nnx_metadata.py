"""NNX sharding metadata on one device: with_partitioning, specs, named shardings, rules,
constraints and errors. (Shards on 8 devices: tests/sharding/test_sharding_init.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from flaxen import errors, nnx

MESH = jax.make_mesh((1, 1), ("data", "model"), axis_types=(AxisType.Auto,) * 2)


def partitioned(names):
  return nnx.with_partitioning(nnx.initializers.lecun_normal(), names)


class Model(nnx.Module):
  def __init__(self, rngs):
    self.up = nnx.Linear(4, 6, kernel_init=partitioned(("embed", "mlp")), rngs=rngs)
    self.down = nnx.Linear(6, 2, kernel_init=partitioned(("model", None)), rngs=rngs)
    self.count = nnx.Variable(jnp.zeros(()))
    self.tag = 3  # static, not in the state


def test_with_partitioning_sets_variable_metadata():
  model = Model(nnx.Rngs(0))
  kernel = model.up.kernel
  assert kernel.sharding_names == ("embed", "mlp") and kernel.mesh is None
  assert kernel.value.shape == (4, 6)  # the metadata box is gone
  init = nnx.with_metadata(nnx.initializers.zeros, note="hi")
  assert nnx.Param(init(jax.random.key(0), (2,))).note == "hi"


def test_get_partition_spec_of_a_state():
  specs = nnx.get_partition_spec(nnx.state(model := Model(nnx.Rngs(0))))
  assert isinstance(specs["up"]["kernel"], nnx.Param)  # Variables kept, values replaced
  assert specs["up"]["kernel"].value == P("embed", "mlp")
  assert specs["up"]["bias"].value == P()  # unannotated: replicated
  assert specs["down"]["kernel"].value == P("model", None)
  assert specs["count"].value == P()
  plain = nnx.get_partition_spec({"a": jnp.ones(2), "b": 1.5})
  assert plain == {"a": P(), "b": None}
  assert model.up.kernel.sharding_names == ("embed", "mlp")  # the model is untouched


def test_every_metadata_spelling_is_read():
  for key in ("sharding_names", "sharding", "out_sharding"):
    var = nnx.Param(jnp.ones((2, 3)), **{key: ("data", None)})
    assert nnx.get_partition_spec(var).value == P("data", None)


def test_rules_map_names_to_mesh_axes():
  state = nnx.state(Model(nnx.Rngs(0)))
  with nnx.logical_axis_rules([("embed", None), ("mlp", "model")]):
    specs = nnx.get_partition_spec(state)
  assert specs["up"]["kernel"].value == P(None, "model")
  assert specs["down"]["kernel"].value == P("model", None)  # no rule: a mesh axis already
  own_rules = nnx.Param(jnp.ones((2, 3)), sharding_names=("embed", None),
                        sharding_rules=(("embed", "data"),))
  assert nnx.get_partition_spec(own_rules).value == P("data", None)


def test_get_named_sharding():
  state = nnx.state(Model(nnx.Rngs(0)))
  with nnx.logical_axis_rules([("embed", "data"), ("mlp", "model")]):
    shardings = nnx.get_named_sharding(state, MESH)
  assert shardings["up"]["kernel"].value == NamedSharding(MESH, P("data", "model"))
  assert shardings["up"]["bias"].value == NamedSharding(MESH, P())
  placed = jax.device_put(state, shardings)
  np.testing.assert_array_equal(placed["up"]["kernel"].value, state["up"]["kernel"].value)


def test_unknown_mesh_axis_names_the_variable():
  state = nnx.state(Model(nnx.Rngs(0)))  # 'embed'/'mlp' have no rule and no mesh axis
  with pytest.raises(errors.UnknownMeshAxisError, match="variable up/kernel.*'embed'"):
    nnx.get_named_sharding(state, MESH)


def test_names_must_match_the_rank():
  short = nnx.Param(jnp.ones((2, 3)), sharding_names=("data",))  # the rest unsharded
  assert nnx.get_partition_spec({"w": short})["w"].value == P("data")
  var = nnx.Param(jnp.ones((2, 3)), sharding_names=("data", None, None))
  with pytest.raises(errors.ShardingNamesError, match=r"\('data', None, None\).*shape \(2, 3\)"):
    nnx.get_partition_spec({"w": var})
  with jax.set_mesh(MESH), pytest.raises(errors.ShardingNamesError):
    nnx.Param(jnp.ones((2, 3)), sharding_names=("data", None, None))  # laid out on creation


def test_with_sharding_constraint():
  x = jnp.ones((2, 3))
  assert nnx.with_sharding_constraint(x, P("data")) is x  # no mesh: unchanged
  with jax.set_mesh(MESH):
    jaxpr = jax.make_jaxpr(lambda v: nnx.with_sharding_constraint(v, P("data", "model")))(x)
  [eqn] = [e for e in jaxpr.eqns if e.primitive.name == "sharding_constraint"]
  assert eqn.params["sharding"].spec == P("data", "model")
  y = nnx.with_sharding_constraint(x, NamedSharding(MESH, P("data")))
  assert y.sharding == NamedSharding(MESH, P("data"))


def test_guide_recipe_inside_nnx_jit_keeps_values():
  @nnx.jit
  def create():
    model = Model(nnx.Rngs(0))
    state = nnx.state(model)
    nnx.update(model, nnx.with_sharding_constraint(state, nnx.get_partition_spec(state)))
    return model

  with jax.set_mesh(MESH), nnx.logical_axis_rules([("embed", "data"), ("mlp", "model")]):
    model = create()
  want = Model(nnx.Rngs(0))
  np.testing.assert_allclose(model.up.kernel.value, want.up.kernel.value, rtol=1e-6)
  assert model.up.kernel.value.sharding.mesh.axis_names == ("data", "model")
  assert model.tag == 3 and model.down.kernel.sharding_names == ("model", None)


def test_a_variable_with_its_own_mesh_is_laid_out_on_creation():
  var = nnx.Param(jnp.ones((2, 3)), sharding_names=("data", None), mesh=MESH)
  assert var.value.sharding == NamedSharding(MESH, P("data", None))


def test_inside_shard_map_annotations_leave_blocks_alone():
  def body(x):  # each device's block: Manual axes have no layout to constrain to
    return nnx.Param(x * 2, sharding_names=("data", None)).value

  with jax.set_mesh(MESH):
    y = jax.jit(jax.shard_map(body, mesh=MESH, in_specs=P("data"), out_specs=P("data")))(
      jnp.ones((2, 3)))
  np.testing.assert_array_equal(y, np.full((2, 3), 2.0))
