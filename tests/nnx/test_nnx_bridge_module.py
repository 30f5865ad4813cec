"""nnx.bridge.Module (setup / @compact, init / apply against hand-written math),
nnx_in_bridge_mdl / linen_in_bridge_mdl, functional, NNXMeta, ToLinen's nnx_method."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import flaxen.linen as nn
from flaxen import errors, nnx
from flaxen.nnx import bridge

X = jnp.arange(6.0).reshape(2, 3) / 6


class Dense(bridge.Module):
  features: int

  @bridge.compact
  def __call__(self, x):
    w = self.param("w", nnx.initializers.lecun_normal(), (x.shape[-1], self.features))
    b = self.param("b", nnx.initializers.zeros, (self.features,))
    return x @ w + b


class MLP(bridge.Module):
  @bridge.compact
  def __call__(self, x):
    h = jax.nn.relu(Dense(4)(x))
    return Dense(2, name="head")(h)


def test_compact_names_init_and_apply_match_the_math():
  variables = MLP().init(0, X)
  p = variables["params"]
  assert set(p) == {"Dense_0", "head"} and p["Dense_0"]["w"].shape == (3, 4)
  ref = jax.nn.relu(X @ p["Dense_0"]["w"] + p["Dense_0"]["b"]) @ p["head"]["w"] + p["head"]["b"]
  np.testing.assert_allclose(MLP().apply(variables, X), ref, rtol=1e-6)
  # apply with other values: they are used, not re-initialized
  doubled = jax.tree.map(lambda a: 2 * a, variables)
  q = doubled["params"]
  ref2 = jax.nn.relu(X @ q["Dense_0"]["w"] + q["Dense_0"]["b"]) @ q["head"]["w"] + q["head"]["b"]
  np.testing.assert_allclose(MLP().apply(doubled, X), ref2, rtol=1e-6)


class Block(bridge.Module):
  features: int

  def setup(self):
    self.lin = bridge.nnx_in_bridge_mdl(lambda r: nnx.Linear(3, self.features, rngs=r))
    self.dense = bridge.linen_in_bridge_mdl(nn.Dense(self.features))
    self.count = self.variable("counter", "count", jnp.zeros, ())

  def __call__(self, x):
    self.count.value += 1
    return self.lin(x) + self.dense(x)


def test_setup_with_nnx_and_linen_submodules_and_a_mutable_collection():
  model = Block(4)
  variables = model.init(0, X)
  p = variables["params"]
  assert float(variables["counter"]["count"]) == 1.0  # init keeps what its call wrote
  y, updates = model.apply(variables, X, mutable=True)
  ref = X @ p["lin"]["kernel"] + p["lin"]["bias"] + X @ p["dense"]["kernel"] + p["dense"]["bias"]
  np.testing.assert_allclose(y, ref, rtol=1e-6)
  assert float(updates["counter"]["count"]) == 2.0
  assert model.apply(variables, X).shape == (2, 4)  # mutable=False: the output only


def test_loaded_params_are_checked_against_init_shapes():
  variables = MLP().init(0, X)
  bad = {"params": {**variables["params"], "head": {"w": jnp.ones((5, 2)), "b": jnp.ones(2)}}}
  with pytest.raises(errors.ScopeParamShapeError):
    MLP().apply(bad, X)


def test_unbound_param_and_context():
  assert bridge.current_context() is None and bridge.current_module() is None
  with pytest.raises(errors.BridgeUnboundModuleError):
    Dense(2).param("w", nnx.initializers.zeros, (2,))
  with pytest.raises(errors.BridgeUnboundModuleError):
    bridge.nnx_in_bridge_mdl(lambda r: nnx.Linear(1, 1, rngs=r))


def test_functional_init_apply():
  f = bridge.functional(nnx.Linear)(3, 2)
  with pytest.raises(errors.FunctionalNotInitializedError):
    f.apply({})
  state = f.init(rngs=nnx.Rngs(0))
  y, (graphdef, new_state) = f.apply(state)(X)
  np.testing.assert_allclose(y, X @ state["kernel"].value + state["bias"].value, rtol=1e-6)
  assert graphdef == f.graphdef


def test_to_linen_boxes_metadata_in_nnxmeta():
  init = nnx.with_partitioning(nnx.initializers.lecun_normal(), ("in", "out"))
  model = bridge.to_linen(nnx.Linear, 3, 4, kernel_init=init)
  variables = model.init(jax.random.key(0), X)
  kernel = variables["params"]["kernel"]
  assert isinstance(kernel, bridge.NNXMeta) and kernel.metadata["out_sharding"] == ("in", "out")
  assert nn.get_partition_spec(variables)["params"]["kernel"] == P("in", "out")
  assert kernel.add_axis(0, {nn.PARTITION_NAME: "layers"}).metadata["out_sharding"] == (
    "layers", "in", "out")
  var = kernel.to_nnx_variable()
  assert type(var) is nnx.Param and var.out_sharding == ("in", "out")
  np.testing.assert_allclose(model.apply(variables, X),
                             X @ kernel.value + variables["params"]["bias"], rtol=1e-6)


def test_to_linen_nnx_method_by_argument_and_attribute():
  class Wrapper(nn.Module):
    def setup(self):
      self.embed = bridge.to_linen(nnx.Embed, 5, 3)

    def __call__(self, ids):
      return self.embed(ids)

    def attend(self, q):
      return self.embed.attend(q)

  ids, q = jnp.array([1, 4]), jnp.ones((2, 3))
  variables = Wrapper().init(jax.random.key(0), ids)
  table = variables["params"]["embed"]["embedding"]
  np.testing.assert_allclose(Wrapper().apply(variables, q, method="attend"), q @ table.T,
                             rtol=1e-6)
  flat = bridge.to_linen(nnx.Embed, 5, 3)
  v = flat.init(jax.random.key(0), ids)
  np.testing.assert_allclose(flat.apply(v, q, nnx_method="attend"),
                             q @ v["params"]["embedding"].T, rtol=1e-6)


def test_to_nnx_linen_methods_and_prefixed_attributes():
  class TwoWays(nn.Module):
    def setup(self):
      self.w = self.param("w", nn.initializers.ones, (3, 2))

    def __call__(self, x):
      return x @ self.w

    def doubled(self, x):
      return 2 * (x @ self.w)

  model = bridge.ToNNX(TwoWays(), rngs=nnx.Rngs(0)).lazy_init(X)
  assert isinstance(model.to_nnx__rngs, nnx.Rngs) and model.rngs is model.to_nnx__rngs
  np.testing.assert_allclose(model.doubled(X), 2 * X @ jnp.ones((3, 2)), rtol=1e-6)


def test_nnx_wrappers_module_and_registry_names():
  assert nnx.wrappers.ToNNX is bridge.ToNNX and nnx.wrappers.functional is bridge.functional

  @nnx.register_variable_name("bridge_test_counts")
  class Counts(nnx.Variable):
    pass

  assert nnx.variable_name_from_type(Counts) == "bridge_test_counts"
  assert nnx.variable_type_from_name("bridge_test_counts") is Counts
