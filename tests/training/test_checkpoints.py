"""training.checkpoints: round trips, keep / keep_every_n_steps / overwrite, the msgpack
backend, and clear errors for missing and corrupt checkpoints."""

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from flaxen import config, errors
from flaxen.configurations import temp_flip_flag
from flaxen.core import FrozenDict, freeze
from flaxen.training import checkpoints
from flaxen.training.train_state import TrainState


def tree(v=1.0):
  return {"params": {"w": jnp.full((2, 3), float(v)), "b": jnp.arange(3, dtype=jnp.int32)}}


def assert_tree_equal(a, b):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
    assert np.asarray(x).dtype == np.asarray(y).dtype


def names(d):
  return sorted(os.listdir(d))


def test_round_trip_with_and_without_target(tmp_path):
  path = checkpoints.save_checkpoint(tmp_path, tree(2.0), step=3)
  assert path == str(tmp_path / "checkpoint_3")
  assert_tree_equal(checkpoints.restore_checkpoint(tmp_path, target=tree(0.0)), tree(2.0))
  assert_tree_equal(checkpoints.restore_checkpoint(tmp_path, target=None), tree(2.0))
  # a single checkpoint's path works as ckpt_dir too
  assert_tree_equal(checkpoints.restore_checkpoint(path, target=None), tree(2.0))


def test_train_state_round_trip_and_state_dict(tmp_path):
  params = {"w": jnp.ones(3)}
  state = TrainState.create(apply_fn=None, params=params, tx=optax.adam(0.1))
  state = state.apply_gradients(grads={"w": jnp.array([1.0, -1.0, 0.5])})
  checkpoints.save_checkpoint(tmp_path, state, step=int(state.step))
  fresh = TrainState.create(apply_fn=None, params={"w": jnp.zeros(3)}, tx=optax.adam(0.1))
  restored = checkpoints.restore_checkpoint(tmp_path, target=fresh)
  assert isinstance(restored, TrainState) and int(restored.step) == 1
  assert_tree_equal(restored.params, state.params)
  assert_tree_equal(restored.opt_state, state.opt_state)
  # target=None: the state dict, string keys all the way down (sequences too)
  raw = checkpoints.restore_checkpoint(tmp_path, target=None)
  np.testing.assert_array_equal(raw["params"]["w"], state.params["w"])
  np.testing.assert_array_equal(raw["opt_state"]["0"]["mu"]["w"], state.opt_state[0].mu["w"])


def test_keep_and_latest(tmp_path):
  for step in [1, 2, 10, 11]:
    checkpoints.save_checkpoint(tmp_path, tree(step), step, keep=2)
  assert names(tmp_path) == ["checkpoint_10", "checkpoint_11"]
  assert checkpoints.available_steps(tmp_path) == [10, 11]  # natural order, not text
  assert checkpoints.latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_11")
  assert_tree_equal(checkpoints.restore_checkpoint(tmp_path, None, step=10), tree(10))
  assert_tree_equal(checkpoints.restore_checkpoint(tmp_path, None), tree(11))


def test_keep_every_n_steps(tmp_path):
  for step in range(1, 8):
    checkpoints.save_checkpoint(tmp_path, tree(step), step, keep=1, keep_every_n_steps=3)
  # old ones kept when at least 3 steps after the previous one kept: 1, 4, 7 (latest)
  assert checkpoints.available_steps(tmp_path) == [1, 4, 7]


def test_overwrite_replaces_the_step_and_removes_later_ones(tmp_path):
  for step in [1, 2, 3]:
    checkpoints.save_checkpoint(tmp_path, tree(step), step, keep=5)
  with pytest.raises(errors.InvalidCheckpointError) as info:
    checkpoints.save_checkpoint(tmp_path, tree(0.0), 2, keep=5)
  assert isinstance(info.value, ValueError) and "overwrite=True" in str(info.value)
  assert_tree_equal(checkpoints.restore_checkpoint(tmp_path, None, step=2), tree(2))
  checkpoints.save_checkpoint(tmp_path, tree(-1.0), 2, keep=5, overwrite=True)
  assert checkpoints.available_steps(tmp_path) == [1, 2]
  assert_tree_equal(checkpoints.restore_checkpoint(tmp_path, None), tree(-1.0))


def test_nothing_to_restore_returns_the_target(tmp_path):
  target = tree()
  assert checkpoints.restore_checkpoint(tmp_path / "never_made", target) is target
  assert checkpoints.restore_checkpoint(tmp_path, target) is target  # empty directory
  assert checkpoints.latest_checkpoint(tmp_path) is None
  assert checkpoints.available_steps(tmp_path / "never_made") == []


def test_missing_step_is_a_clear_error(tmp_path):
  checkpoints.save_checkpoint(tmp_path, tree(), 4)
  with pytest.raises(errors.CheckpointStepNotFoundError) as info:
    checkpoints.restore_checkpoint(tmp_path, None, step=5)
  assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
  assert "checkpoint_5" in str(info.value) and "'4'" in str(info.value)


def test_corrupt_orbax_checkpoint(tmp_path):
  path = checkpoints.save_checkpoint(tmp_path, tree(), 0)
  for root, _, files in os.walk(path):
    for f in files:
      open(os.path.join(root, f), "wb").close()  # truncate every file
  with pytest.raises(errors.CheckpointCorruptedError):
    checkpoints.restore_checkpoint(tmp_path, tree())


def test_shape_mismatch_names_the_path(tmp_path):
  checkpoints.save_checkpoint(tmp_path, tree(), 0)
  bad = {"params": {"w": jnp.zeros((3, 3)), "b": jnp.zeros(3, jnp.int32)}}
  with pytest.raises(errors.CheckpointMismatchError, match="params/w"):
    checkpoints.restore_checkpoint(tmp_path, bad)


def test_single_leaf_is_refused(tmp_path):
  with pytest.raises(errors.SingleLeafCheckpointError):
    checkpoints.save_checkpoint(tmp_path, jnp.ones(3), 0)
  assert names(tmp_path) == []


def test_interrupted_save_leaves_earlier_checkpoints(tmp_path):
  checkpoints.save_checkpoint(tmp_path, tree(1.0), 1)
  # What an orbax save killed mid-way leaves: a temporary directory, never listed.
  os.makedirs(tmp_path / "checkpoint_2.orbax-checkpoint-tmp-123")
  assert checkpoints.available_steps(tmp_path) == [1]
  assert_tree_equal(checkpoints.restore_checkpoint(tmp_path, None), tree(1.0))


def test_orbax_checkpointer_argument_and_flax_written_layout(tmp_path):
  # A checkpoint written the way Flax writes it: an orbax PyTreeCheckpointHandler.
  ckptr = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
  path = checkpoints.save_checkpoint(tmp_path, tree(5.0), 7, orbax_checkpointer=ckptr)
  assert any(os.path.exists(os.path.join(path, f)) for f in
             (checkpoints.ORBAX_METADATA_FILENAME, checkpoints.ORBAX_MANIFEST_OCDBT))
  assert_tree_equal(checkpoints.restore_checkpoint(tmp_path, tree(0.0)), tree(5.0))
  got = checkpoints.restore_checkpoint(tmp_path, tree(0.0), orbax_checkpointer=ckptr)
  assert_tree_equal(got, tree(5.0))


def test_msgpack_backend_warns_and_round_trips(tmp_path):
  assert config.flax_use_orbax_checkpointing
  with temp_flip_flag("use_orbax_checkpointing", False):
    for step in [1, 2]:
      with pytest.warns(DeprecationWarning, match="msgpack"):
        path = checkpoints.save_checkpoint(tmp_path, tree(step), step, keep=1)
    assert os.path.isfile(path) and names(tmp_path) == ["checkpoint_2"]
    with pytest.warns(DeprecationWarning), pytest.raises(errors.InvalidCheckpointError):
      checkpoints.save_checkpoint(tmp_path, tree(), 1)  # before the latest step
  # restore reads it whatever the flag says
  assert_tree_equal(checkpoints.restore_checkpoint(tmp_path, tree(0.0)), tree(2.0))
  raw = checkpoints.restore_checkpoint(tmp_path, None)
  np.testing.assert_array_equal(raw["params"]["w"], tree(2.0)["params"]["w"])


def test_msgpack_async_manager(tmp_path):
  am = checkpoints.AsyncManager()
  with temp_flip_flag("use_orbax_checkpointing", False), warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    for step in range(3):
      checkpoints.save_checkpoint(tmp_path, tree(step), step, keep=2, async_manager=am)
  am.wait_previous_save()
  assert checkpoints.available_steps(tmp_path) == [1, 2]
  assert_tree_equal(checkpoints.restore_checkpoint(tmp_path, None, step=2),
                    jax.tree_util.tree_map(np.asarray, tree(2)))


def test_corrupt_msgpack_checkpoint(tmp_path):
  (tmp_path / "checkpoint_0").write_bytes(b"\xc1not msgpack")
  with pytest.raises(errors.CheckpointCorruptedError, match="checkpoint_0"):
    checkpoints.restore_checkpoint(tmp_path, None)


def test_natural_sort_and_safe_normpath():
  got = checkpoints.natural_sort(["ckpt_1e5", "ckpt_-1.0", "ckpt_10", "ckpt_2", "ckpt_0.5"])
  assert got == ["ckpt_-1.0", "ckpt_0.5", "ckpt_2", "ckpt_10", "ckpt_1e5"]
  # unsigned: '-' separates, so -1.0 counts as 1.0
  assert checkpoints.natural_sort(["a_-3", "a_2"], signed=False) == ["a_2", "a_-3"]
  assert checkpoints.safe_normpath("gs://bucket//a/./b/") == "gs://bucket/a/b"
  assert checkpoints.safe_normpath("./x//y") == "x/y"


def test_convert_pre_linen():
  pre = {"Conv_0": {"k": 1}, "Dense_1": {"k": 2}, "Dense_2": {"inner_3": {"Dense_7": 3}},
         "bias": 4}
  want = {"Conv_0": {"k": 1}, "Dense_0": {"k": 2}, "Dense_1": {"inner_0": {"Dense_0": 3}},
          "bias": 4}
  assert checkpoints.convert_pre_linen(pre) == want
  frozen = checkpoints.convert_pre_linen(freeze(pre))
  assert isinstance(frozen, FrozenDict) and frozen == freeze(want)
  assert checkpoints.convert_pre_linen(want) == want  # already Linen: unchanged


def test_string_leaves_are_saved_as_flax_saves_them(tmp_path):
  saved = {"w": jnp.ones(2), "name": "run-7"}
  checkpoints.save_checkpoint(tmp_path, saved, 1)
  got = checkpoints.restore_checkpoint(tmp_path, {"w": jnp.zeros(2), "name": ""})
  assert got["name"] == "run-7"
  np.testing.assert_array_equal(got["w"], [1.0, 1.0])
  checkpoints.save_checkpoint(tmp_path, {"w": jnp.zeros(2), "name": "run-8"}, 1, overwrite=True)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # orbax: no target, sharding read from file
    raw = checkpoints.restore_checkpoint(tmp_path, None)
  assert raw["name"] == "run-8" and checkpoints.available_steps(tmp_path) == [1]
  np.testing.assert_array_equal(raw["w"], [0.0, 0.0])


def test_restore_casts_to_the_target_dtype_as_orbax_does(tmp_path):
  checkpoints.save_checkpoint(tmp_path, {"w": jnp.arange(3.0), "n": np.arange(2, dtype=np.int32)},
                              0)
  got = checkpoints.restore_checkpoint(
    tmp_path, {"w": jnp.zeros(3, jnp.bfloat16), "n": np.zeros(2, np.int64)})
  assert got["w"].dtype == jnp.bfloat16 and isinstance(got["w"], jax.Array)
  assert got["n"].dtype == np.int64 and isinstance(got["n"], np.ndarray)
  np.testing.assert_array_equal(got["w"].astype(jnp.float32), [0.0, 1.0, 2.0])  # exact in bf16
  np.testing.assert_array_equal(got["n"], [0, 1])
