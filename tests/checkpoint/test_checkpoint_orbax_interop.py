"""Checkpoints move between flaxen.checkpoint and plain orbax in both directions."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from flaxen import checkpoint
from flaxen.training.train_state import TrainState

TX = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))  # holds an EmptyState


def _state():
  state = TrainState.create(
    apply_fn=None, params={"Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)}}, tx=TX
  )
  return state.apply_gradients(grads=jax.tree.map(jnp.ones_like, state.params))


def _assert_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_plain_orbax_checkpoint_restores_with_flaxen(tmp_path):
  state = _state()
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(tmp_path / "ckpt", state)
  _assert_equal(checkpoint.restore(tmp_path / "ckpt", jax.eval_shape(_state)), state)
  raw = checkpoint.restore(tmp_path / "ckpt")
  assert raw["opt_state"][0] is None  # the EmptyState, as orbax stores it
  np.testing.assert_array_equal(raw["opt_state"][1][0]["mu"]["Dense_0"]["bias"],
                                state.opt_state[1][0].mu["Dense_0"]["bias"])


def test_flaxen_checkpoint_restores_with_plain_orbax(tmp_path):
  state = _state()
  checkpoint.save(tmp_path / "ckpt", state)
  with ocp.StandardCheckpointer() as ckptr:
    restored = ckptr.restore(tmp_path / "ckpt", jax.eval_shape(_state))
  _assert_equal(restored, state)
