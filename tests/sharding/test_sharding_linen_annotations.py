"""Linen sharding annotations on one device: logical rules, boxes, constraints, errors.

A one-device mesh with named axes runs the same constraint code as a real mesh, so the
layouts are checked here in process; tests/sharding/test_sharding_init.py checks shards.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import flaxen.linen as nn
from flaxen import errors
from flaxen.linen import partitioning as nn_partitioning

MESH = jax.make_mesh((1, 1), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
RULES = (("batch", "data"), ("embed", None), ("mlp", "model"))


def constraint_specs(fn, *args):
  """The PartitionSpecs of the sharding constraints in ``fn``'s program, in order (a
  one-device mesh hides them in output shardings, the program does not)."""
  found = []

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "sharding_constraint":
        found.append(eqn.params["sharding"].spec)
      for param in eqn.params.values():
        inner = getattr(param, "jaxpr", param)
        if hasattr(inner, "eqns"):
          walk(inner)

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return found


def logical(init, names):
  return nn.with_logical_partitioning(init, names)


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = nn.Dense(6, kernel_init=logical(nn.initializers.lecun_normal(), ("embed", "mlp")),
                 bias_init=logical(nn.initializers.zeros, ("mlp",)))(x)
    h = nn.with_logical_constraint(nn.relu(h), ("batch", "mlp"))
    return nn.Dense(2, kernel_init=nn.with_partitioning(nn.initializers.lecun_normal(),
                                                        ("model", None)))(h)


@pytest.fixture(scope="module")
def variables():
  return MLP().init(jax.random.key(0), jnp.ones((3, 4)))


def test_rule_precedence_first_free_rule_wins():
  rules = (("batch", "X"), ("features", "X"), ("heads", "Y"), ("batch", "Z"))
  spec = nn.logical_to_mesh_axes(("batch", "length", "heads", "features"), rules)
  assert spec == P("X", None, "Y", None)  # 'features' loses 'X' to 'batch'; 'length' has none
  assert nn.logical_to_mesh_axes(("batch", None), (("batch", ("data", "model")),)) == P(
    ("data", "model"), None)
  assert nn.logical_to_mesh_axes(None) is None


def test_rules_context_nests_and_restores():
  assert nn.get_logical_axis_rules() == ()
  with nn.logical_axis_rules(RULES):
    assert nn.logical_to_mesh_axes(("batch", "mlp")) == P("data", "model")
    with nn.logical_axis_rules([("batch", None)]):
      assert nn.logical_to_mesh_axes(("batch",)) == P(None)
    assert nn.get_logical_axis_rules() == RULES
    assert nn.logical_to_mesh_axes(("mlp",), [("mlp", "data")]) == P("data")  # explicit wins
  assert nn.get_logical_axis_rules() == ()
  nn.set_logical_axis_rules(RULES)
  try:
    assert nn.logical_to_mesh_axes(("embed",)) == P(None)
  finally:
    nn.set_logical_axis_rules(())


def test_rule_errors():
  assert nn.logical_to_mesh_axes(("batch",)) == P(None)  # no rules: unsharded, as in Flax
  u = P.UNCONSTRAINED  # repeats, passes through, and takes no mesh axis
  assert nn.logical_to_mesh_axes(("batch", u, u), RULES) == P("data", u, u)
  with pytest.raises(errors.LogicalAxisRulesError, match="more than once"):
    nn.logical_to_mesh_axes(("batch", "batch"), RULES)
  with pytest.raises(errors.LogicalAxisRulesError, match="not a .logical_name, mesh_axes. pair"):
    nn.logical_to_mesh_axes(("batch",), ["batch"])


def test_boxes_unbox_and_partition_specs(variables):
  params = variables["params"]
  assert isinstance(params["Dense_0"]["kernel"], nn.LogicallyPartitioned)
  assert type(params["Dense_1"]["kernel"]) is nn.Partitioned
  plain = nn.unbox(variables)
  assert isinstance(plain["params"]["Dense_0"]["kernel"], jax.Array)
  assert plain["params"]["Dense_1"]["bias"].shape == (2,)
  specs = nn.get_partition_spec(variables)["params"]
  assert specs["Dense_0"] == {"kernel": P("embed", "mlp"), "bias": P("mlp")}  # logical names
  assert specs["Dense_1"] == {"kernel": P("model", None), "bias": P()}
  mesh_specs = nn.logical_to_mesh(specs["Dense_0"], RULES)
  assert mesh_specs == {"kernel": P(None, "model"), "bias": P("model")}
  shardings = nn.logical_to_mesh_sharding(specs["Dense_0"], MESH, RULES)
  assert shardings["kernel"] == NamedSharding(MESH, P(None, "model"))


def test_get_sharding_maps_each_box_by_its_kind(variables):
  with nn.logical_axis_rules(RULES):
    shardings = nn.get_sharding(variables, MESH)["params"]
  assert shardings["Dense_0"]["kernel"].spec == P(None, "model")
  assert shardings["Dense_1"]["kernel"].spec == P("model", None)
  assert shardings["Dense_1"]["bias"].spec == P()


def test_apply_under_a_mesh_computes_the_same(variables):
  x = jax.random.normal(jax.random.key(1), (3, 4))
  want = MLP().apply(variables, x)  # no mesh: annotations are inert
  with jax.set_mesh(MESH), nn.logical_axis_rules(RULES):
    got = jax.jit(MLP().apply)(variables, x)
    specs = constraint_specs(MLP().apply, variables, x)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # Params are constrained as they are read (kernel, bias of Dense_0, then Dense_1's
  # kernel; a param read twice gives the same constraint twice), the activation where the
  # model says so.
  assert list(dict.fromkeys(specs)) == [P(None, "model"), P("model"), P("data", "model"),
                                        P("model", None)]


def test_with_logical_constraint_without_mesh_is_identity():
  x = jnp.ones((2, 3))
  assert nn.with_logical_constraint(x, ("unknown", "names")) is x


def test_with_logical_constraint_fallbacks():
  x = jnp.ones((2, 3))
  with jax.set_mesh(MESH), nn.logical_axis_rules(RULES):
    assert nn.with_logical_constraint(x, ("batch", "length"),
                                      fallback=nn.RulesFallback.NO_CONSTRAINT) is x
    with pytest.raises(errors.LogicalAxisRulesError, match="'length'"):
      nn.with_logical_constraint(x, ("batch", "length"), fallback=nn.RulesFallback.RAISE_ERROR)
    specs = constraint_specs(lambda v: nn.with_logical_constraint(v, ("batch", "length")), x)
  assert specs == [P("data", None)]  # the unassigned 'length' is unsharded


def test_names_must_match_rank_and_mesh():
  assert nn.get_partition_spec({"w": nn.Partitioned(jnp.ones((2, 3)), ("data",))})["w"] == (
    P("data"))  # fewer names than dimensions: the rest unsharded, as in a PartitionSpec
  box = nn.Partitioned(jnp.ones((2, 3)), ("data", None, None))
  with pytest.raises(errors.ShardingNamesError, match=r"shape \(2, 3\)"):
    nn.get_partition_spec({"w": box})
  with pytest.raises(errors.ShardingNamesError):
    nn.get_sharding({"w": box}, MESH)
  bad_axis = nn.Partitioned(jnp.ones((2, 3)), ("data", "tensor"))
  with pytest.raises(errors.UnknownMeshAxisError, match="'tensor'.*'data', 'model'"):
    nn.get_sharding({"w": bad_axis}, MESH)
  with pytest.raises(errors.UnknownMeshAxisError):
    nn.logical_to_mesh_sharding({"w": P("mlp")}, MESH, [("mlp", "tensor")])


def test_dense_general_flat_init_keeps_its_box_under_a_mesh():
  kernel_init = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model", None))
  layer = nn.DenseGeneral((2, 3), kernel_init=kernel_init)
  with jax.set_mesh(MESH):
    v = jax.jit(layer.init)(jax.random.key(0), jnp.ones((1, 4)))
  kernel = v["params"]["kernel"]
  assert kernel.value.shape == (4, 2, 3)
  assert nn.get_sharding(v, MESH)["params"]["kernel"].spec == P(None, "model", None)


def test_vmap_inserts_the_partition_name():
  layers = nn.vmap(nn.Dense, variable_axes={"params": 0}, split_rngs={"params": True},
                   in_axes=0, metadata_params={nn.PARTITION_NAME: "layers"})
  dense = layers(2, kernel_init=logical(nn.initializers.lecun_normal(), ("embed", "mlp")))
  v = dense.init(jax.random.key(0), jnp.ones((5, 1, 4)))
  kernel = v["params"]["kernel"]
  assert kernel.names == ("layers", "embed", "mlp") and kernel.value.shape == (5, 4, 2)
  assert isinstance(kernel, nn.LogicallyPartitioned)


class WithAxes(nn.Module):
  @nn.compact
  def __call__(self, x):
    w = nn_partitioning.param_with_axes("w", nn.initializers.ones, (x.shape[-1], 2),
                                        axes=("embed", "mlp"))
    count = nn_partitioning.variable_with_axes("stats", "count", jnp.zeros, (2,),
                                               axes=("mlp",))
    count.value = count.value + 1
    return x @ w


def test_param_with_axes_records_axes_in_a_side_collection():
  v = WithAxes().init(jax.random.key(0), jnp.ones((1, 3)))
  assert isinstance(v["params"]["w"], jax.Array)  # the param itself stays bare
  assert nn_partitioning.get_axis_names(v["params_axes"]) == {"w": P("embed", "mlp")}
  assert nn_partitioning.get_axis_names(v["stats_axes"]) == {"count": P("mlp")}
  np.testing.assert_array_equal(v["stats"]["count"], np.ones(2))
  with jax.set_mesh(MESH), nn.logical_axis_rules(RULES):
    y, _ = jax.jit(lambda v, x: WithAxes().apply(v, x, mutable=["stats"]))(v, jnp.ones((1, 3)))
  np.testing.assert_allclose(y, np.full((1, 2), 3.0))


def test_a_box_with_its_own_mesh_is_constrained_without_set_mesh():
  init = nn.with_partitioning(nn.initializers.ones, (None, "model"), mesh=MESH)
  layer = nn.Dense(3, kernel_init=init)
  v = layer.init(jax.random.key(0), jnp.ones((1, 2)))
  assert list(dict.fromkeys(constraint_specs(layer.apply, v, jnp.ones((1, 2))))) == [
    P(None, "model")]


class Block(nn.Module):
  @nn.compact
  def __call__(self, x, _):
    h = nn.Dense(4, kernel_init=logical(nn.initializers.lecun_normal(), ("embed", "mlp")))(x)
    return nn.with_logical_constraint(x + h, ("batch", "embed")), None


def test_scanned_layers_get_a_layers_axis_and_keep_their_layout():
  stack = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=3,
                  metadata_params={nn.PARTITION_NAME: "layers"})()
  x = jnp.ones((2, 4))
  init = lambda: stack.init(jax.random.key(0), x, None)  # noqa: E731
  with jax.set_mesh(MESH), nn.logical_axis_rules((*RULES, ("layers", None))):
    abstract = jax.eval_shape(init)
    shardings = nn.get_sharding(abstract, MESH)
    v = jax.jit(init, out_shardings=shardings)()
    y, _ = jax.jit(stack.apply)(v, x, None)
  assert abstract["params"]["Dense_0"]["kernel"].names == ("layers", "embed", "mlp")
  assert shardings["params"]["Dense_0"]["kernel"].spec == P(None, None, "model")
  want, _ = stack.apply(v, x, None)  # the same without a mesh
  np.testing.assert_allclose(y, want, rtol=1e-6)
