"""CheckpointManager: retention of latest and best steps, restore, async saves, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import checkpoint, errors, struct


@struct.dataclass
class State:
  step: int
  w: jax.Array


def _state(step):
  return State(step=step, w=jnp.full((4,), float(step)))


def test_keeps_latest_n_and_restores_latest_and_named_steps(tmp_path):
  with checkpoint.CheckpointManager(tmp_path / "run", max_to_keep=3) as mngr:
    assert mngr.latest_step() is None and mngr.all_steps() == []
    for step in range(6):
      mngr.save(step, _state(step))
    mngr.wait_until_finished()
    assert mngr.all_steps() == [3, 4, 5]
    assert mngr.latest_step() == 5
    restored = mngr.restore(target=_state(0))
    assert restored.step == 5 and isinstance(restored, State)
    np.testing.assert_array_equal(restored.w, np.full(4, 5.0))
    assert mngr.restore(4, _state(0)).step == 4
  assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["3", "4", "5"]


@pytest.mark.parametrize(("mode", "best"), [("max", 2), ("min", 1)])
def test_keeps_best_by_metric_besides_latest(tmp_path, mode, best):
  losses = {0: 0.5, 1: 0.1, 2: 0.9, 3: 0.3, 4: 0.4, 5: 0.2}
  with checkpoint.CheckpointManager(
    tmp_path, max_to_keep=2, best_fn=lambda m: m["score"], best_mode=mode, async_save=False
  ) as mngr:
    for step, score in losses.items():
      mngr.save(step, _state(step), metrics={"score": jnp.float32(score)})
    assert mngr.all_steps() == sorted({best, 4, 5})
    assert mngr.best_step() == best
    assert mngr.restore(best, _state(0)).step == best


def test_reopened_manager_sees_steps_on_disk(tmp_path):
  with checkpoint.CheckpointManager(str(tmp_path)) as mngr:
    mngr.save(1, _state(1))
    mngr.save(7, _state(7))
  with checkpoint.CheckpointManager(tmp_path) as mngr:
    assert mngr.all_steps() == [1, 7]
    assert mngr.restore(target=_state(0)).step == 7
    raw = mngr.restore(1)
    assert raw["step"] == 1 and set(raw) == {"step", "w"}


def test_uncommitted_temporary_step_directory_is_never_a_step(tmp_path):
  with checkpoint.CheckpointManager(tmp_path, async_save=False) as mngr:
    mngr.save(1, _state(1))
  # What a process killed mid-save leaves behind.
  (tmp_path / "2.orbax-checkpoint-tmp").mkdir()
  (tmp_path / "3.orbax-checkpoint-tmp-1234").mkdir()
  with checkpoint.CheckpointManager(tmp_path) as mngr:
    assert mngr.all_steps() == [1] and mngr.latest_step() == 1
    assert mngr.restore(target=_state(0)).step == 1
    with pytest.raises(errors.CheckpointNotFoundError, match="no step 2"):
      mngr.restore(2)


def test_async_save_is_listed_once_committed(tmp_path):
  with checkpoint.CheckpointManager(tmp_path, async_save=True) as mngr:
    mngr.save(0, {"w": jnp.ones((256, 256))})
    listed = mngr.all_steps()
    assert listed in ([], [0])
    assert listed == [] or (tmp_path / "0").is_dir()
    mngr.wait_until_finished()
    assert mngr.all_steps() == [0]


def test_async_save_keeps_the_values_at_save_time(tmp_path):
  host = np.zeros(1_000_000, np.float32)
  with checkpoint.CheckpointManager(tmp_path, async_save=True) as mngr:
    mngr.save(0, {"host": host})
    host[:] = 7.0  # mutating after save() returns must not reach the checkpoint
    assert float(np.abs(mngr.restore(0)["host"]).max()) == 0.0


def test_restore_waits_for_the_save_in_progress(tmp_path):
  with checkpoint.CheckpointManager(tmp_path) as mngr:
    mngr.save(3, {"w": jnp.arange(1000.0)})
    np.testing.assert_array_equal(mngr.restore()["w"], np.arange(1000.0))


def test_errors(tmp_path):
  with pytest.raises(errors.CheckpointManagerArgumentError, match="best_mode"):
    checkpoint.CheckpointManager(tmp_path, best_mode="largest")
  with pytest.raises(errors.CheckpointManagerArgumentError, match="max_to_keep=0"):
    checkpoint.CheckpointManager(tmp_path, max_to_keep=0)
  with pytest.raises(errors.CheckpointManagerArgumentError, match="keep_best"):
    checkpoint.CheckpointManager(tmp_path, keep_best=None)
  with checkpoint.CheckpointManager(tmp_path, best_fn=lambda m: m["acc"]) as mngr:
    with pytest.raises(errors.CheckpointNotFoundError, match="no step saved"):
      mngr.restore()
    with pytest.raises(errors.CheckpointManagerArgumentError, match="metrics"):
      mngr.save(0, _state(0))
    with pytest.raises(errors.CheckpointManagerArgumentError, match="step=-1"):
      mngr.save(-1, _state(0), metrics={"acc": 1.0})
    mngr.save(0, _state(0), metrics={"acc": 1.0})
    with pytest.raises(errors.CheckpointExistsError):
      mngr.save(0, _state(0), metrics={"acc": 2.0})
    with pytest.raises(errors.CheckpointMismatchError, match="'w'"):
      mngr.restore(0, State(step=0, w=jnp.zeros((5,))))
    with pytest.raises(errors.CheckpointNotFoundError, match="Steps available: 0"):
      mngr.restore(9)
    mngr.save(5, _state(5), metrics={"acc": 1.0})
    with pytest.raises(errors.CheckpointManagerArgumentError, match="latest one saved, 5"):
      mngr.save(3, _state(3), metrics={"acc": 1.0})
  mngr.close()  # a second close is harmless
  for call in (lambda: mngr.save(6, _state(6), metrics={"acc": 1.0}), mngr.restore):
    with pytest.raises(errors.CheckpointManagerClosedError, match="after close"):
      call()
