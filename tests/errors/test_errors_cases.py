"""Issue #9's misuse cases: each raises its flaxen.errors class, naming where and the fix.

One function per case, registered with the error class it must raise and the texts its
message must contain (the module path, collection, variable or shapes involved).
"""

from __future__ import annotations

import functools
import tempfile

import jax
import jax.numpy as jnp
import optax
import pytest

import flaxen.linen as nn
from flaxen import checkpoint, errors, nnx, struct
from flaxen.nnx import bridge
from flaxen.training import train_state

CASES = []
X = jnp.ones((2, 4))


def case(error: type, *names: str):
  """Registers a case: calling it raises ``error`` whose message contains every name."""
  def register(fn):
    CASES.append(pytest.param(fn, error, names, id=fn.__name__))
    return fn
  return register


class Mlp(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(3, name="dense")(x)


@functools.cache
def mlp_variables():
  return Mlp().init(jax.random.key(0), X)


class Net(nnx.Module):
  def __init__(self, dout: int = 3):
    self.linear = nnx.Linear(4, dout, rngs=nnx.Rngs(0))
    self.bn = nnx.BatchNorm(dout, rngs=nnx.Rngs(0))


@case(errors.ScopeParamNotFoundError, '"/dense"', '"kernel"')
def param_not_found():
  Mlp().apply({"params": {"dense": {"bias": jnp.zeros(3)}}}, X)


@case(errors.ScopeParamShapeError, '"/dense"', '"kernel"', "(4, 3)", "(4, 5)")
def param_shape_mismatch():
  Mlp().apply({"params": {"dense": {"kernel": jnp.ones((4, 5)), "bias": jnp.zeros(5)}}}, X)


@case(errors.ModifyScopeVariableError, '"/bn"', '"batch_stats"', 'mutable=["batch_stats"]')
def variable_in_immutable_collection():
  bn = nn.BatchNorm(use_running_average=False, name="bn")
  model = nn.Sequential([bn])
  model.apply(model.init(jax.random.key(0), X), X)


@case(errors.InvalidRngError, '"/noise"', '"dropout"', "rngs={'dropout'")
def rng_stream_missing():
  class Noise(nn.Module):
    @nn.compact
    def __call__(self, x):
      return x + jax.random.normal(self.make_rng("dropout"), x.shape)

  class Outer(nn.Module):
    @nn.compact
    def __call__(self, x):
      return Noise(name="noise")(x)

  Outer().apply({}, X)


@case(errors.CallCompactUnboundModuleError, "Mlp.__call__", "model.apply")
def unbound_module_called():
  Mlp()(X)


@case(errors.UnboundModuleError, "Mlp", "model.bind")
def unbound_module_variables():
  _ = Mlp().variables


@case(errors.NameInUseError, '"same"', "Twins at /")
def setup_name_collision():
  class Twins(nn.Module):
    def setup(self):
      self.a = nn.Dense(3, name="same")
      self.b = nn.Dense(3, name="same")

    def __call__(self, x):
      return self.a(x) + self.b(x)

  Twins().init(jax.random.key(0), X)


@case(errors.NameInUseError, '"d"', "Twins at /")
def compact_name_collision():
  class Twins(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(3, name="d")(x) + nn.Dense(3, name="d")(x)

  Twins().init(jax.random.key(0), X)


@case(errors.NameInUseError, 'param "w"', "Twice at /")
def compact_param_name_collision():
  class Twice(nn.Module):
    @nn.compact
    def __call__(self, x):
      return self.param("w", nn.initializers.ones, (4,)) * self.param("w", nn.initializers.ones,
                                                                      (4,)) * x

  Twice().init(jax.random.key(0), X)


def test_a_submodule_called_twice_reads_its_params_again():
  class Twice(nn.Module):
    @nn.compact
    def __call__(self, x):
      dense = nn.Dense(4)
      return dense(dense(x))

  variables = Twice().init(jax.random.key(0), X)
  kernel, bias = variables["params"]["Dense_0"]["kernel"], variables["params"]["Dense_0"]["bias"]
  ref = (X @ kernel + bias) @ kernel + bias
  assert jnp.allclose(Twice().apply(variables, X), ref, atol=1e-6)




@case(errors.AssignSubModuleError, "Dense", "Lazy at /", "setup()")
def submodule_outside_setup():
  class Lazy(nn.Module):
    def __call__(self, x):
      self.dense = nn.Dense(3)
      return self.dense(x)

  Lazy().init(jax.random.key(0), X)


@case(errors.CallSetupUnboundModuleError, "Encoder", "'dense'", "bind")
def setup_attribute_on_unbound_module():
  class Encoder(nn.Module):
    def setup(self):
      self.dense = nn.Dense(3)

    def __call__(self, x):
      return self.dense(x)

  _ = Encoder().dense


@struct.dataclass
class Config:
  lr: float
  layers: object = struct.field(pytree_node=False, default=())


@case(errors.FrozenStructError, "'lr'", "Config", "replace(lr=")
def mutate_frozen_struct():
  Config(0.1).lr = 0.2


@case(errors.UnhashableStaticFieldError, "Config.layers", "list", "tuple")
def unhashable_static_field():
  hash(Config(0.1, layers=[8, 8]))


@case(errors.StaticArrayFieldError, "Config.layers", "(3,)", "pytree_node=False")
def array_in_static_field():
  hash(Config(0.1, layers=jnp.ones(3)))


@case(errors.TransformedClosureError, "'/Dense_0'", "nn.vmap", "Partial")
def module_closed_over_in_lifted_transform():
  class Outer(nn.Module):
    @nn.compact
    def __call__(self, x):
      dense = nn.Dense(3)
      vmapped = nn.vmap(lambda mdl, x: dense(x), variable_axes={"params": 0},
                        split_rngs={"params": True})
      return vmapped(self, x)

  Outer().init(jax.random.key(0), jnp.ones((2, 2, 4)))


@case(errors.UnmatchedFilterError, "'bn/mean'", "BatchStat", "...")
def filter_leaves_variables_unmatched():
  nnx.split(Net(), nnx.Param)


@case(errors.MissingStateError, "'bn/mean'", "nnx.merge")
def merge_with_state_of_another_graph():
  graphdef, _ = nnx.split(Net())
  nnx.merge(graphdef, nnx.state(Net(), nnx.Param))


@case(errors.OptimizerGradsError, "'bn/bias'", "(3,)", "(5,)", "nnx.grad")
def optimizer_grads_of_another_structure():
  model, other = Net(3), Net(5)
  optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
  grads = nnx.grad(lambda m: m.linear(X).sum())(other)
  optimizer.update(model, grads)


@case(errors.OptimizerGradsError, "'bn/bias'", "no entry", "wrt")
def optimizer_grads_missing_a_path():
  model = Net()
  optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
  diff = nnx.DiffState(0, nnx.All(nnx.Param, nnx.PathContains("linear")))
  grads = nnx.grad(lambda m: m.linear(X).sum(), argnums=diff)(model)
  optimizer.update(model, grads)


@case(errors.OptimizerGradsError, "TrainState.apply_gradients", "'layers_0/bias'", "(3,)",
      "(5,)", "jax.grad")
def train_state_grads_of_another_structure():
  model = nn.Sequential([nn.Dense(3)])
  params = model.init(jax.random.key(0), X)["params"]
  state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.sgd(0.1))
  other = nn.Sequential([nn.Dense(5)]).init(jax.random.key(0), X)["params"]
  state.apply_gradients(grads=other)


@case(errors.TracerLeakError, "'box/kept'", "nnx.jit", "nnx.Variable")
def tracer_leaking_out_of_nnx_jit():
  class Box:
    pass

  model = Net()
  model.box = Box()

  @nnx.jit
  def step(m, x):
    m.box.kept = m.linear(x)

  step(model, X)


@case(errors.OptimizerUpdateError, "State", "optimizer.update(model, grads)")
def optimizer_grads_not_a_state():
  model = Net()
  nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param).update(model, {"w": X})


@case(errors.CheckpointMismatchError, "'params/w'", "float32[4]", "float32[3]")
def checkpoint_structure_mismatch():
  with tempfile.TemporaryDirectory() as tmp:
    checkpoint.save(f"{tmp}/ckpt", {"params": {"w": jnp.ones(3)}})
    checkpoint.restore(f"{tmp}/ckpt", target={"params": {"w": jnp.ones(4)}})


@case(errors.FeatureSizeError, "Dense at '/dense'", "4 input feature", "has 5")
def dense_feature_size():
  Mlp().apply(mlp_variables(), jnp.ones((2, 5)))


@case(errors.InputShapeError, "Dense at '/dense'", "shape ()")
def dense_input_rank():
  Mlp().init(jax.random.key(0), jnp.ones(()))


@case(errors.FeatureSizeError, "Conv at '/layers_0'", "2 input feature", "has 4")
def conv_feature_size():
  model = nn.Sequential([nn.Conv(3, (3,))])
  model.apply(model.init(jax.random.key(0), jnp.ones((1, 5, 2))), jnp.ones((1, 5, 4)))


@case(errors.InputShapeError, "Conv at '/layers_0'", "at least 3 dims", "(4,)")
def conv_input_rank():
  nn.Sequential([nn.Conv(3, (3, 3))]).init(jax.random.key(0), jnp.ones((4,)))


@case(errors.FeatureSizeError, "Linear", "4 input feature", "has 5")
def nnx_linear_feature_size():
  nnx.Linear(4, 3, rngs=nnx.Rngs(0))(jnp.ones((2, 5)))


@pytest.mark.parametrize("trigger, error, names", CASES)
def test_misuse_raises_a_flaxen_error_naming_where_and_the_fix(trigger, error, names):
  with pytest.raises(error) as info:
    trigger()
  assert type(info.value) is error
  assert issubclass(error, errors.FlaxenError)
  message = str(info.value)
  for name in names:
    assert name in message, f"{name!r} missing from: {message}"
  assert "Fix" in message, message


def test_to_linen_keeps_updates_of_mutable_collections():
  model = bridge.to_linen(nnx.BatchNorm, 4)
  variables = model.init(jax.random.key(0), X)
  x = jnp.arange(8.0).reshape(2, 4)
  _, updates = model.apply(variables, x, mutable=["batch_stats"])
  ref = nnx.BatchNorm(4, rngs=nnx.Rngs(0))
  ref(x)
  assert jnp.allclose(updates["batch_stats"]["mean"], ref.mean.value)
  # reading the stats without updating them needs no mutable collection (mean 0, var 1)
  evaluation = bridge.to_linen(nnx.BatchNorm, 4, use_running_average=True)
  assert jnp.allclose(evaluation.apply(variables, x), x / jnp.sqrt(1 + 1e-5))
