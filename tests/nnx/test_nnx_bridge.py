"""flaxen.nnx.bridge: ToNNX (Linen -> NNX), ToLinen / to_linen (NNX -> Linen), collections."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import flaxen.linen as nn
from flaxen import errors, nnx
from flaxen.nnx import bridge

X = jnp.arange(6.0).reshape(2, 3) / 6
Y = jnp.ones((2, 4))


def _close(a, b):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def _sgd_reference(kernel, bias, lr=0.1):
  """One SGD step of mean((x @ k + b - y) ** 2) in plain jnp."""
  def loss(k, b):
    return ((X @ k + b - Y) ** 2).mean()
  gk, gb = jax.grad(loss, argnums=(0, 1))(kernel, bias)
  return kernel - lr * gk, bias - lr * gb


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(nn.relu(nn.Dense(5)(x)))


# ----------------------------------------------------------------------------- ToNNX


def test_nnx_import_does_not_import_linen():
  code = ("import sys; from flaxen import nnx; assert 'flaxen.linen' not in sys.modules; "
          "nnx.bridge.ToNNX; assert 'flaxen.linen' in sys.modules")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_bridge_import_and_names():
  assert nnx.bridge.ToNNX is bridge.ToNNX
  assert bridge.to_linen(nnx.Linear, 1, 1).__class__ is bridge.ToLinen


def test_to_nnx_dense_variables_and_call():
  model = bridge.ToNNX(nn.Dense(4), rngs=nnx.Rngs(0)).lazy_init(X)
  assert isinstance(model.kernel, nnx.Param) and model.kernel.shape == (3, 4)
  params = nnx.state(model, nnx.Param)
  assert sorted(p for p, _ in params.flat_state()) == [("bias",), ("kernel",)]
  linen_vars = {"params": {"kernel": model.kernel.value, "bias": model.bias.value}}
  _close(model(X), nn.Dense(4).apply(linen_vars, X))
  assert model.linen_variables().keys() == {"params"}


def test_to_nnx_init_matches_linen_init_with_same_key():
  model = bridge.ToNNX(MLP(), rngs=nnx.Rngs(params=3)).lazy_init(X)
  expected = MLP().init({"params": jax.random.fold_in(jax.random.key(3), 0)}, X)
  got = model.linen_variables()
  jax.tree.map(_close, got, expected)
  paths = sorted(p for p, _ in nnx.state(model, nnx.Param).flat_state())
  assert paths == [("Dense_0", "bias"), ("Dense_0", "kernel"), ("Dense_1", "bias"),
                   ("Dense_1", "kernel")]
  assert isinstance(model.Dense_0, nnx.Dict)


def test_to_nnx_first_call_initializes():
  model = bridge.ToNNX(MLP(), rngs=nnx.Rngs(0))
  y = model(X)
  assert y.shape == (2, 2)
  _close(y, MLP().apply(model.linen_variables(), X))


def test_to_nnx_batchnorm_batch_stats_written_back():
  bn = nn.BatchNorm(use_running_average=False, momentum=0.5)
  model = bridge.ToNNX(bn, rngs=nnx.Rngs(0)).lazy_init(X)
  assert isinstance(model.mean, nnx.BatchStat) and isinstance(model.scale, nnx.Param)
  before = model.linen_variables()
  y = model(X)
  y_ref, upd = bn.apply(before, X, mutable=["batch_stats"])
  _close(y, y_ref)
  _close(model.mean.value, upd["batch_stats"]["mean"])
  _close(model.var.value, upd["batch_stats"]["var"])
  assert not np.allclose(model.mean.value, before["batch_stats"]["mean"])
  # a running-average module reads the stats and leaves them
  model_eval = bridge.ToNNX(nn.BatchNorm(use_running_average=True), rngs=nnx.Rngs(0))
  model_eval.lazy_init(X)
  model_eval.mean.value = model.mean.value
  model_eval(X + 1, mutable=False)
  _close(model_eval.mean.value, model.mean.value)


def test_to_nnx_dropout_draws_from_rngs():
  model = bridge.ToNNX(nn.Dropout(0.5, deterministic=False), rngs=nnx.Rngs(0, dropout=1))
  x = jnp.ones((64,))
  model.lazy_init(x)
  nnx.reseed(model, dropout=1)
  a, b = model(x), model(x)
  assert not np.array_equal(a, b)
  assert int(model.rngs.dropout.count.value) == 2
  nnx.reseed(model, dropout=1)
  np.testing.assert_array_equal(model(x), a)
  # rngs given per call take precedence (reseed gave the stream Rngs(dropout=1)'s first key)
  c = model(x, rngs=nnx.Rngs(dropout=jax.random.fold_in(jax.random.key(1), 0)))
  np.testing.assert_array_equal(c, a)


def test_to_nnx_jit_grad_step_matches_reference():
  model = bridge.ToNNX(nn.Dense(4), rngs=nnx.Rngs(0)).lazy_init(X)
  ref = _sgd_reference(model.kernel.value, model.bias.value)

  @nnx.jit
  def step(model):
    grads = nnx.grad(lambda m: ((m(X) - Y) ** 2).mean())(model)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads))

  step(model)
  _close(model.kernel.value, ref[0])
  _close(model.bias.value, ref[1])


def test_to_nnx_first_call_inside_jit():
  model = bridge.ToNNX(nn.Dense(4), rngs=nnx.Rngs(0))
  y = nnx.jit(lambda m, x: m(x))(model, X)
  assert model.kernel.shape == (3, 4)
  _close(y, model(X))


def test_to_nnx_split_merge():
  model = bridge.ToNNX(nn.BatchNorm(use_running_average=False), rngs=nnx.Rngs(0))
  model.lazy_init(X)
  graphdef, params, stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
  assert sorted(p for p, _ in stats.flat_state()) == [("mean",), ("var",)]
  clone = nnx.merge(graphdef, params, stats, rest)
  _close(clone(X), model(X))


def test_to_nnx_custom_collection_gets_generated_type():
  class Counter(nn.Module):
    @nn.compact
    def __call__(self, x):
      c = self.variable("counter", "n", jnp.zeros, ())
      c.value += 1
      return x

  model = bridge.ToNNX(Counter(), rngs=nnx.Rngs(0)).lazy_init(X)
  counter_type = bridge.variable_type_from_name("counter")
  assert type(model.n) is counter_type and issubclass(counter_type, nnx.Variable)
  model(X)
  model(X)
  assert int(model.n.value) == 3  # init's call, then two more


def test_nnx_module_holding_to_nnx():
  class Model(nnx.Module):
    def __init__(self, rngs):
      self.dense = bridge.ToNNX(nn.Dense(4), rngs=rngs).lazy_init(X)
      self.scale = nnx.Param(jnp.array(2.0))

    def __call__(self, x):
      return self.dense(x) * self.scale

  model = Model(nnx.Rngs(0))
  paths = sorted(p for p, _ in nnx.state(model, nnx.Param).flat_state())
  assert paths == [("dense", "bias"), ("dense", "kernel"), ("scale",)]
  k, b = model.dense.kernel.value, model.dense.bias.value
  _close(model(X), (X @ k + b) * 2)


# ---------------------------------------------------------------------------- ToLinen


def test_to_linen_linear_init_and_apply():
  model = bridge.to_linen(nnx.Linear, 3, 4)
  variables = model.init(jax.random.key(0), X)
  assert jax.tree.map(jnp.shape, variables) == {"params": {"bias": (4,), "kernel": (3, 4)}}
  p = variables["params"]
  _close(model.apply(variables, X), X @ p["kernel"] + p["bias"])
  assert bridge.ToLinen(nnx.Linear, args=(3, 4)).init(jax.random.key(0), X).keys() == {
    "params"}


def test_to_linen_inside_compact_parent_and_grad_step():
  class Model(nn.Module):
    @nn.compact
    def __call__(self, x):
      return bridge.to_linen(nnx.Linear, 3, 4)(x)

  variables = Model().init(jax.random.key(0), X)
  p = variables["params"]["ToLinen_0"]
  ref = _sgd_reference(p["kernel"], p["bias"])

  @jax.jit
  def step(params):
    def loss(params):
      return ((Model().apply({"params": params}, X) - Y) ** 2).mean()
    return jax.tree.map(lambda w, g: w - 0.1 * g, params, jax.grad(loss)(params))

  new = step(variables["params"])["ToLinen_0"]
  _close(new["kernel"], ref[0])
  _close(new["bias"], ref[1])


def test_to_linen_batchnorm_batch_stats():
  model = bridge.to_linen(nnx.BatchNorm, 3, momentum=0.5, use_running_average=False)
  variables = model.init(jax.random.key(0), X)
  assert set(variables) == {"params", "batch_stats"}
  _close(variables["batch_stats"]["mean"], jnp.zeros(3))
  y, upd = model.apply(variables, X, mutable=["batch_stats"])
  ref = nnx.BatchNorm(3, momentum=0.5, rngs=nnx.Rngs(0))
  _close(y, ref(X))
  _close(upd["batch_stats"]["mean"], ref.mean.value)
  _close(upd["batch_stats"]["var"], ref.var.value)
  assert set(upd) == {"batch_stats"}
  # without mutable the stats' update is dropped, as Flax's ToLinen drops it
  _close(model.apply(variables, X), y)
  _close(variables["batch_stats"]["mean"], jnp.zeros(3))


def test_to_linen_dropout_rngs():
  model = bridge.to_linen(nnx.Dropout, rate=0.5)
  x = jnp.ones((64,))
  a = model.apply({}, x, rngs={"dropout": jax.random.key(1)})
  b = model.apply({}, x, rngs={"dropout": jax.random.key(2)})
  a2 = model.apply({}, x, rngs={"dropout": jax.random.key(1)})
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(a, a2)
  assert set(np.unique(np.asarray(a)).tolist()) <= {0.0, 2.0}


def test_to_linen_sow_intermediates():
  class Sower(nnx.Module):
    def __init__(self, rngs):
      self.lin = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
      y = self.lin(x)
      self.sow(nnx.Intermediate, "y", y)
      return y

  model = bridge.to_linen(Sower)
  variables = model.init(jax.random.key(0), X)
  assert set(variables) == {"params"}
  y, upd = model.apply(variables, X, mutable=["intermediates"])
  _close(upd["intermediates"]["y"][0], y)


def test_to_linen_missing_collection_raises():
  model = bridge.to_linen(nnx.BatchNorm, 3)
  variables = model.init(jax.random.key(0), X)
  with pytest.raises(errors.BridgeVariableError, match="batch_stats"):
    model.apply({"params": variables["params"]}, X)


# -------------------------------------------------------------------------- round trips


def test_round_trip_nnx_linen_nnx_values_equal():
  linen_model = bridge.to_linen(nnx.Linear, 3, 4)
  variables = linen_model.init(jax.random.key(0), X)
  back = bridge.ToNNX(linen_model, rngs=nnx.Rngs(params=0)).lazy_init(X)
  # same values once the wrapper is given the Linen variables
  nnx.update(back, nnx.State({"kernel": nnx.Param(variables["params"]["kernel"]),
                              "bias": nnx.Param(variables["params"]["bias"])}))
  jax.tree.map(_close, back.linen_variables(), variables)
  _close(back(X), linen_model.apply(variables, X))


def test_round_trip_linen_nnx_linen_values_equal():
  dense = nn.Dense(4)
  variables = dense.init(jax.random.key(0), X)

  class Wrapper(nnx.Module):  # an NNX module holding a Linen Dense, back to Linen
    def __init__(self, rngs):
      self.inner = bridge.ToNNX(dense, rngs=rngs).lazy_init(jnp.ones((1, 3)))

    def __call__(self, x):
      return self.inner(x)

  wrapped = bridge.to_linen(Wrapper)
  got = wrapped.init(jax.random.key(1), X)
  assert jax.tree.map(jnp.shape, got) == {"params": {"inner": {"bias": (4,), "kernel": (3, 4)}}}
  nested = {"params": {"inner": variables["params"]}}
  _close(wrapped.apply(nested, X), dense.apply(variables, X))


def test_training_step_identical_on_both_sides():
  nnx_model = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
  k0, b0 = nnx_model.kernel.value, nnx_model.bias.value
  ref = _sgd_reference(k0, b0)

  # Linen side: the NNX class wrapped by to_linen, trained functionally
  linen_model = bridge.to_linen(nnx.Linear, 3, 4)
  params = {"kernel": k0, "bias": b0}
  grads = jax.grad(lambda p: ((linen_model.apply({"params": p}, X) - Y) ** 2).mean())(params)
  linen_new = jax.tree.map(lambda w, g: w - 0.1 * g, params, grads)

  # NNX side: a Linen Dense wrapped by ToNNX, trained statefully
  wrapped = bridge.ToNNX(nn.Dense(4), rngs=nnx.Rngs(0)).lazy_init(X)
  wrapped.kernel.value, wrapped.bias.value = k0, b0
  g = nnx.grad(lambda m: ((m(X) - Y) ** 2).mean())(wrapped)
  nnx.update(wrapped, jax.tree.map(lambda p, d: p - 0.1 * d, nnx.state(wrapped, nnx.Param), g))

  for got in (linen_new, {"kernel": wrapped.kernel.value, "bias": wrapped.bias.value}):
    _close(got["kernel"], ref[0])
    _close(got["bias"], ref[1])


# ------------------------------------------------------------------------- the mapping


def test_collection_type_mapping():
  pairs = {"params": nnx.Param, "batch_stats": nnx.BatchStat, "cache": nnx.Cache,
           "intermediates": nnx.Intermediate}
  for name, typ in pairs.items():
    assert bridge.variable_type_from_name(name) is typ
    assert bridge.variable_name_from_type(typ) == name

  class Stat(nnx.Variable):
    pass

  bridge.register_variable_name("bridge_test_stats", Stat)
  assert bridge.variable_type_from_name("bridge_test_stats") is Stat
  assert bridge.variable_name_from_type(Stat) == "bridge_test_stats"
  with pytest.raises(errors.VariableNameConflictError):
    bridge.register_variable_name("params", Stat)


def test_partitioning_metadata_crosses_both_ways():
  dense = nn.Dense(4, kernel_init=nn.with_partitioning(nn.initializers.lecun_normal(),
                                                       (None, "model")))
  model = bridge.ToNNX(dense, rngs=nnx.Rngs(0)).lazy_init(X)
  assert model.kernel.out_sharding == (None, "model")
  boxed = model.linen_variables()["params"]["kernel"]
  assert isinstance(boxed, nn.Partitioned) and boxed.names == (None, "model")
  _close(model(X), dense.apply(model.linen_variables(), X))

  lin = bridge.to_linen(nnx.Linear, 3, 4, kernel_metadata={"sharding": ("data", None)})
  variables = lin.init(jax.random.key(0), X)
  kernel = variables["params"]["kernel"]
  assert isinstance(kernel, bridge.NNXMeta) and kernel.metadata["out_sharding"] == ("data", None)
  assert nn.get_partition_spec(variables)["params"]["kernel"] == P("data", None)
  _close(lin.apply(variables, X), X @ kernel.value + variables["params"]["bias"])


def test_to_nnx_sow_intermediates_and_pop():
  class Sower(nn.Module):
    @nn.compact
    def __call__(self, x):
      y = nn.Dense(2)(x)
      self.sow("intermediates", "y", y)
      return y

  model = bridge.ToNNX(Sower(), rngs=nnx.Rngs(0)).lazy_init(X)
  y = model(X)
  popped = nnx.pop(model, nnx.Intermediate)
  (path, var), = popped.flat_state()
  assert path == ("y",) and type(var) is nnx.Intermediate
  _close(var.value[0], y)
  _close(model(X), y)  # still callable once the intermediates are gone


def test_to_linen_list_paths_and_metadata_fn():
  def make(rngs):
    return nnx.Sequential(nnx.Linear(3, 5, rngs=rngs), nnx.relu, nnx.Linear(5, 2, rngs=rngs))

  model = bridge.to_linen(make)
  variables = model.init(jax.random.key(0), X)
  assert set(variables["params"]["layers"]) == {"0", "2"}
  p = variables["params"]["layers"]
  h = jax.nn.relu(X @ p["0"]["kernel"] + p["0"]["bias"])
  _close(model.apply(variables, X), h @ p["2"]["kernel"] + p["2"]["bias"])

  plain = bridge.to_linen(nnx.Linear, 3, 4, kernel_metadata={"sharding": ("a", None)},
                          metadata_fn=lambda var: var.value)
  assert not isinstance(plain.init(jax.random.key(0), X)["params"]["kernel"], nn.Partitioned)
