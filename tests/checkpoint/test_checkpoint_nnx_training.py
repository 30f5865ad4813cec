"""Checkpoints of nnx.State (into nnx.eval_shape's abstract state) and of TrainState."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flaxen import checkpoint, errors, nnx
from flaxen.training.train_state import TrainState


def _trained_optimizer():
  model = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
  grads = jax.tree.map(jnp.ones_like, nnx.state(model, nnx.Param))
  optimizer.update(model, grads)
  return model, optimizer


def test_nnx_model_state_restores_into_abstract_model(tmp_path):
  model = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
  checkpoint.save(tmp_path / "ckpt", nnx.state(model))
  abstract = nnx.eval_shape(lambda: nnx.Linear(3, 4, rngs=nnx.Rngs(1)))
  restored = checkpoint.restore(tmp_path / "ckpt", nnx.state(abstract))
  assert isinstance(restored, nnx.State)
  fresh = nnx.Linear(3, 4, rngs=nnx.Rngs(7))
  nnx.update(fresh, restored)
  np.testing.assert_array_equal(fresh.kernel.value, model.kernel.value)
  x = jnp.ones((2, 3))
  np.testing.assert_array_equal(fresh(x), model(x))


def test_nnx_optimizer_state_round_trips(tmp_path):
  _, optimizer = _trained_optimizer()
  state = nnx.state(optimizer)
  assert int(state["step"].value) == 1
  checkpoint.save(tmp_path / "ckpt", state)
  abstract = nnx.state(nnx.eval_shape(
    lambda: nnx.Optimizer(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), optax.adam(1e-2), wrt=nnx.Param)
  ))
  restored = checkpoint.restore(tmp_path / "ckpt", abstract)
  for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_nnx_shape_mismatch_names_the_variable(tmp_path):
  checkpoint.save(tmp_path / "ckpt", nnx.state(nnx.Linear(3, 4, rngs=nnx.Rngs(0))))
  abstract = nnx.eval_shape(lambda: nnx.Linear(3, 5, rngs=nnx.Rngs(0)))
  with pytest.raises(errors.CheckpointMismatchError) as info:
    checkpoint.restore(tmp_path / "ckpt", nnx.state(abstract))
  assert info.value.path == "bias/value"
  assert info.value.expected == "float32[5]" and info.value.found == "float32[4]"


def test_train_state_after_jitted_steps_restores_into_fresh_state(tmp_path):
  tx = optax.sgd(0.1, momentum=0.9)
  state = TrainState.create(apply_fn=None, params={"w": jnp.ones((2, 2))}, tx=tx)
  step = jax.jit(lambda s: s.apply_gradients(grads={"w": jnp.ones((2, 2))}))
  state = step(step(state))
  with checkpoint.CheckpointManager(tmp_path, max_to_keep=1) as mngr:
    mngr.save(int(state.step), state)
    fresh = TrainState.create(apply_fn=None, params={"w": jnp.zeros((2, 2))}, tx=tx)
    restored = mngr.restore(target=fresh)
  assert int(restored.step) == 2 and restored.tx is tx
  np.testing.assert_allclose(restored.params["w"], state.params["w"])
  np.testing.assert_allclose(restored.opt_state[0].trace["w"], state.opt_state[0].trace["w"])
  # Training goes on from the restored state exactly as from the original.
  np.testing.assert_allclose(step(restored).params["w"], step(state).params["w"])
