"""BatchNorm with ``axis_name``: statistics of the whole batch when the batch is split across
devices (``shard_map`` and ``pmap`` on 8 simulated devices, in a subprocess) or across a
named ``vmap`` axis (in process), for Linen and NNX. The reference is the hand-written
formula on the whole batch; the updated running averages must match it too."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sharding_subprocess import run_on_devices

import flaxen.linen as nn
from flaxen import nnx

MOMENTUM, EPS = 0.9, 1e-5


def reference(x, scale, bias):
  """Batch norm over axis 0 and the running averages after one step from (0, 1)."""
  mean = x.mean(0)
  var = ((x - mean) ** 2).mean(0)
  y = (x - mean) / jnp.sqrt(var + EPS) * scale + bias
  return y, (1 - MOMENTUM) * mean, MOMENTUM + (1 - MOMENTUM) * var


SNIPPET = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, PartitionSpec as P
import flaxen.linen as nn
from flaxen import nnx

mesh = jax.make_mesh((8,), ("batch",), axis_types=(AxisType.Auto,))
x = jax.random.normal(jax.random.key(1), (16, 3)) * 2.0 + 1.0
scale = jax.random.uniform(jax.random.key(2), (3,)) + 0.5
bias = jax.random.normal(jax.random.key(3), (3,))
out = {"x": np.asarray(x).tolist(), "scale": np.asarray(scale).tolist(),
       "bias": np.asarray(bias).tolist()}

bn = nn.BatchNorm(use_running_average=False, momentum=0.9, axis_name="batch")
variables = bn.init(jax.random.key(0), x)
variables["params"] = {"scale": scale, "bias": bias}
step = lambda v, xs: bn.apply(v, xs, mutable=["batch_stats"])
y, upd = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P("batch")),
                               out_specs=(P("batch"), P())))(variables, x)
out["linen_shard_map"] = [np.asarray(y).tolist(), np.asarray(upd["batch_stats"]["mean"]).tolist(),
                          np.asarray(upd["batch_stats"]["var"]).tolist()]

y, upd = jax.pmap(step, axis_name="batch", in_axes=(None, 0))(variables, x.reshape(8, 2, 3))
out["linen_pmap"] = [np.asarray(y).reshape(16, 3).tolist(),
                     np.asarray(upd["batch_stats"]["mean"][0]).tolist(),
                     np.asarray(upd["batch_stats"]["var"][0]).tolist()]

model = nnx.BatchNorm(3, momentum=0.9, axis_name="batch", rngs=nnx.Rngs(0))
model.scale.value, model.bias.value = scale, bias
graphdef, state = nnx.split(model)

def nnx_step(state, xs):
  m = nnx.merge(graphdef, state)
  return m(xs), nnx.state(m)

y, new_state = jax.jit(jax.shard_map(nnx_step, mesh=mesh, in_specs=(P(), P("batch")),
                                     out_specs=(P("batch"), P())))(state, x)
nnx.update(model, new_state)
out["nnx_shard_map"] = [np.asarray(y).tolist(), np.asarray(model.mean.value).tolist(),
                        np.asarray(model.var.value).tolist()]
emit(out)
"""


@pytest.fixture(scope="module")
def devices_report():
  return run_on_devices(SNIPPET, n_devices=8)


@pytest.mark.parametrize("case", ["linen_shard_map", "linen_pmap", "nnx_shard_map"])
def test_batchnorm_across_devices_uses_whole_batch_stats(devices_report, case):
  r = devices_report
  want = reference(jnp.asarray(r["x"]), jnp.asarray(r["scale"]), jnp.asarray(r["bias"]))
  for got, expected in zip(r[case], want, strict=True):
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def batch():
  x = jax.random.normal(jax.random.key(4), (8, 3)) * 3.0 - 1.0
  return x, jnp.array([0.5, 1.0, 2.0]), jnp.array([0.1, -0.2, 0.3])


def test_linen_batchnorm_over_named_vmap_axis(batch):
  x, scale, bias = batch
  bn = nn.BatchNorm(use_running_average=False, momentum=MOMENTUM, axis_name="batch")
  variables = {"params": {"scale": scale, "bias": bias},
               "batch_stats": {"mean": jnp.zeros(3), "var": jnp.ones(3)}}
  y, upd = jax.vmap(lambda xs: bn.apply(variables, xs, mutable=["batch_stats"]),
                    axis_name="batch")(x.reshape(4, 2, 3))
  want_y, want_mean, want_var = reference(x, scale, bias)
  np.testing.assert_allclose(y.reshape(8, 3), want_y, rtol=1e-5, atol=1e-5)
  for i in range(4):  # every copy holds the same, whole-batch running averages
    np.testing.assert_allclose(upd["batch_stats"]["mean"][i], want_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(upd["batch_stats"]["var"][i], want_var, rtol=1e-5, atol=1e-6)


def test_nnx_batchnorm_over_named_vmap_axis(batch):
  x, scale, bias = batch
  model = nnx.BatchNorm(3, momentum=MOMENTUM, axis_name="batch", rngs=nnx.Rngs(0))
  model.scale.value, model.bias.value = scale, bias
  graphdef, state = nnx.split(model)

  def step(xs):
    m = nnx.merge(graphdef, state)
    return m(xs), nnx.state(m)

  y, new_state = jax.vmap(step, axis_name="batch")(x.reshape(4, 2, 3))
  want_y, want_mean, want_var = reference(x, scale, bias)
  np.testing.assert_allclose(y.reshape(8, 3), want_y, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(new_state["mean"].value[0], want_mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new_state["var"].value[3], want_var, rtol=1e-5, atol=1e-6)
