"""Sharded init on 8 simulated CPU devices (one subprocess runs every check).

Linen: ``jax.jit(model.init, out_shardings=...)`` from logical annotations and rules.
NNX: the guide's ``nnx.jit`` + ``get_partition_spec`` + constraint + ``nnx.update`` recipe,
``jax.jit(out_shardings=nnx.get_named_sharding(...))`` over an abstract model, and Variables
laid out on creation under ``jax.set_mesh``. Every param must carry its annotated sharding,
every device must hold only its shard, and the values must equal an unsharded init's.
"""

import pytest
from sharding_subprocess import run_on_devices

SNIPPET = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
import flaxen.linen as nn
from flaxen import nnx

auto = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
explicit = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
rules = (("batch", "data"), ("embed", "data"), ("mlp", "model"))

def describe(tree, reference):
  # {path: [spec, sorted distinct shard shapes, n shards, equal to the unsharded value]}
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  ref = jax.tree.leaves(reference)
  out = {}
  for (path, leaf), want in zip(flat, ref, strict=True):
    shapes = sorted({tuple(s.data.shape) for s in leaf.addressable_shards})
    out[jax.tree_util.keystr(path)] = [
      str(leaf.sharding.spec), shapes, len(leaf.addressable_shards),
      bool(np.allclose(np.asarray(leaf), np.asarray(want)))]
  return out

report = {}

# ----------------------------------------------------------------------------- Linen
class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = nn.Dense(16, kernel_init=nn.with_logical_partitioning(
                   nn.initializers.lecun_normal(), ("embed", "mlp")),
                 bias_init=nn.with_logical_partitioning(nn.initializers.normal(), ("mlp",)))(x)
    h = nn.with_logical_constraint(nn.relu(h), ("batch", "mlp"))
    return nn.Dense(8, use_bias=False, kernel_init=nn.with_partitioning(
      nn.initializers.lecun_normal(), ("model", "data")))(h)

model, x, key = MLP(), jnp.ones((4, 8)), jax.random.key(0)
plain = nn.unbox(model.init(key, x))
abstract = jax.eval_shape(model.init, key, x)
with nn.logical_axis_rules(rules):
  shardings = nn.get_sharding(abstract, auto)  # each box by its kind: logical or mesh names
init = jax.jit(model.init, out_shardings=shardings)
with jax.set_mesh(auto), nn.logical_axis_rules(rules):
  variables = init(key, x)
  y = jax.jit(model.apply)(variables, x)
report["linen"] = describe(nn.unbox(variables), plain)
report["linen_boxes"] = sorted({type(b).__name__ for b in jax.tree.leaves(
  variables, is_leaf=lambda b: isinstance(b, nn.Partitioned))})
report["linen_apply_matches"] = bool(np.allclose(y, model.apply(plain, x), atol=1e-6))
# The logical specs of Dense_0 through the rules give the same shardings.
logical = nn.logical_to_mesh_sharding(nn.get_partition_spec(abstract), auto, rules)
report["linen_logical_sharding_equal"] = (
  logical["params"]["Dense_0"] == shardings["params"]["Dense_0"])
# Per device, the compiled init writes only its shards: its output bytes are the model's
# bytes divided by the sharding factor of each param, never the whole model.
compiled = init.lower(key, x).compile()
report["linen_output_bytes_per_device"] = compiled.memory_analysis().output_size_in_bytes

with jax.set_mesh(auto), nn.logical_axis_rules(rules):
  act = jax.jit(lambda h: nn.with_logical_constraint(h, ("batch", "embed")))(jnp.ones((8, 8)))
spec = act.sharding.spec
report["activation_spec"] = [*spec, *[None] * (act.ndim - len(spec))]

# ----------------------------------------------------------------------------- NNX
class Model(nnx.Module):
  def __init__(self, rngs):
    self.up = nnx.Linear(8, 16, rngs=rngs,
      kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(), ("data", "model")),
      bias_init=nnx.with_partitioning(nnx.initializers.normal(), ("model",)))
    self.down = nnx.Linear(16, 8, use_bias=False, rngs=rngs,
      kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(), ("mlp", "embed")))
  def __call__(self, x):
    return self.down(nnx.relu(self.up(x)))

reference = nnx.state(Model(nnx.Rngs(0)))

@nnx.jit
def create_sharded_model():
  model = Model(nnx.Rngs(0))
  state = nnx.state(model)
  pspecs = nnx.get_partition_spec(state)
  nnx.update(model, nnx.with_sharding_constraint(state, pspecs))
  return model

with jax.set_mesh(auto), nnx.logical_axis_rules(rules):
  model = create_sharded_model()
report["nnx_recipe"] = describe(nnx.state(model), reference)

abstract_model = nnx.eval_shape(lambda: Model(nnx.Rngs(0)))
graphdef, abstract_state = nnx.split(abstract_model)
with nnx.logical_axis_rules(rules):
  named = nnx.get_named_sharding(abstract_state, auto)
state = jax.jit(lambda: nnx.state(Model(nnx.Rngs(0))), out_shardings=named)()
report["nnx_out_shardings"] = describe(state, reference)
merged = nnx.merge(graphdef, state)
report["nnx_merged_call"] = bool(np.allclose(merged(jnp.ones((2, 8))),
                                             nnx.merge(graphdef, reference)(jnp.ones((2, 8))),
                                             atol=1e-6))

for name, mesh in (("nnx_eager_auto", auto), ("nnx_eager_explicit", explicit)):
  with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
    report[name] = describe(nnx.state(Model(nnx.Rngs(0))), reference)
with jax.set_mesh(auto):
  rules_meta = nnx.Param(jnp.ones((8, 4)), sharding_names=("embed", None),
                         sharding_rules=(("embed", "model"),))
  opted_out = nnx.Param(jnp.ones((8, 4)), sharding_names=("data", None), eager_sharding=False)
report["sharding_rules_meta"] = str(rules_meta.value.sharding.spec)
report["eager_opt_out_replicated"] = opted_out.value.sharding.is_fully_replicated
emit(report)
"""

# Expected layouts, worked out by hand from the annotations and rules above:
# embed -> data (2 ways), mlp -> model (4 ways); kernel (8, 16) and (16, 8), bias (16,).
LINEN = {
  "['params']['Dense_0']['kernel']": ["P('data', 'model')", [[4, 4]]],
  "['params']['Dense_0']['bias']": ["P('model',)", [[4]]],
  "['params']['Dense_1']['kernel']": ["P('model', 'data')", [[4, 4]]],
}
NNX = {
  "['up']['kernel'].value": ["P('data', 'model')", [[4, 4]]],
  "['up']['bias'].value": ["P('model',)", [[4]]],
  "['down']['kernel'].value": ["P('model', 'data')", [[4, 4]]],
}


@pytest.fixture(scope="module")
def report():
  return run_on_devices(SNIPPET, n_devices=8)


def check(found, expected):
  assert set(found) == set(expected)
  for path, (spec, shapes) in expected.items():
    got_spec, got_shapes, n_shards, equal = found[path]
    assert (got_spec, got_shapes) == (spec, shapes), path
    assert n_shards == 8, path  # one shard per device, each of the shape above
    assert equal, f"{path}: the sharded init differs from the unsharded one"


def test_linen_init_creates_params_in_their_shards(report):
  check(report["linen"], LINEN)
  assert report["linen_boxes"] == ["LogicallyPartitioned", "Partitioned"]
  assert report["linen_apply_matches"]
  assert report["linen_logical_sharding_equal"]


def test_linen_init_outputs_only_the_local_shards(report):
  # float32 bytes per device: kernel 8*16/8, bias 16/4, kernel 16*8/8 (XLA adds a few bytes
  # of output tuple table); the whole model is 4 * (128 + 16 + 128) bytes.
  shards, whole = 4 * (16 + 4 + 16), 4 * (128 + 16 + 128)
  assert shards <= report["linen_output_bytes_per_device"] < whole / 4


def test_logical_constraint_follows_rule_precedence(report):
  # batch takes 'data' first, so embed (also -> 'data') stays unsharded.
  assert report["activation_spec"] == ["data", None]


def test_nnx_guide_recipe_shards_inside_jit(report):
  check(report["nnx_recipe"], NNX)


def test_nnx_out_shardings_from_get_named_sharding(report):
  check(report["nnx_out_shardings"], NNX)
  assert report["nnx_merged_call"]


def test_nnx_variables_are_sharded_on_creation_under_a_mesh(report):
  check(report["nnx_eager_auto"], NNX)
  check(report["nnx_eager_explicit"], NNX)
  assert report["sharding_rules_meta"] == "P('model', None)"
  assert report["eager_opt_out_replicated"]
