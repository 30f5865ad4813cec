"""nnx.Optimizer: optax state shaped like the params takes each param's metadata (so Adam's
moments are sharded like their params); the rest is plain OptArrays."""

import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from flaxen import nnx


def make_model():
  init = nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, "model"))
  return nnx.Linear(4, 8, kernel_init=init, rngs=nnx.Rngs(0))


def test_adam_moments_follow_param_sharding_names():
  opt = nnx.Optimizer(make_model(), optax.adam(1e-3))
  specs = nnx.get_partition_spec(nnx.state(opt.opt_state))
  for moment in ("mu", "nu"):
    assert specs[0][moment]["kernel"].value == P(None, "model")
    assert specs[0][moment]["bias"].value == P()
  assert specs[0]["count"].value == P()
  assert "sharding_names" not in opt.opt_state[0].count.get_metadata()


def test_update_with_metadata_matches_optax():
  model = make_model()
  opt = nnx.Optimizer(model, optax.adam(0.1))
  params = nnx.state(model, nnx.Param).to_pure_dict()
  grads = {"bias": jnp.ones(8), "kernel": jnp.full((4, 8), 0.5)}
  tx = optax.adam(0.1)
  updates, _ = tx.update(grads, tx.init(params), params)
  expected = optax.apply_updates(params, updates)
  opt.update(model, nnx.State(grads))
  np.testing.assert_allclose(model.kernel.value, expected["kernel"], rtol=1e-6)
  np.testing.assert_allclose(model.bias.value, expected["bias"], rtol=1e-6)
  assert opt.opt_state[0].mu["kernel"].get_metadata()["sharding_names"] == (None, "model")
