"""A process killed (SIGKILL) mid-save leaves the previous checkpoint restorable."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from flaxen import checkpoint

TMP = ".orbax-checkpoint-tmp"
SIZE = 4 * 1024 * 1024  # float32 elements per array: 16 MiB, so a save takes a while

WRITER = """
import sys
import numpy as np
from flaxen import checkpoint

mode, directory, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
def tree(step):
  return {"w": [np.full((size,), step, np.float32) for _ in range(3)], "step": step}
if mode == "manager":
  with checkpoint.CheckpointManager(directory, max_to_keep=2) as mngr:
    for step in range(10_000):
      mngr.save(step, tree(step))
elif mode == "force":
  for step in range(10_000):
    checkpoint.save(f"{directory}/ckpt", tree(step), force=True)
else:
  for step in range(10_000):
    checkpoint.save(f"{directory}/ckpt_{step}", tree(step))
"""


def _committed(directory):
  return [p for p in directory.iterdir() if TMP not in p.name]


def _kill_mid_save(mode, directory, committed=2):
  """Start the writer; SIGKILL it once a save is in flight after ``committed`` ones."""
  proc = subprocess.Popen([sys.executable, "-c", WRITER, mode, str(directory), str(SIZE)])
  try:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
      names = [p.name for p in directory.iterdir()] if directory.exists() else []
      in_flight = [n for n in names if TMP in n]
      if in_flight and len(names) - len(in_flight) >= committed:
        os.kill(proc.pid, signal.SIGKILL)
        break
      time.sleep(0.001)
    else:
      pytest.fail(f"writer exited with {proc.poll()} or never reached a second save")
  finally:
    proc.kill()
    proc.wait()


def _target():
  w = jax.ShapeDtypeStruct((SIZE,), np.float32)
  return {"w": [w, w, w], "step": 0}


def _check(restored, step):
  assert restored["step"] == step
  for w in restored["w"]:
    assert float(w.min()) == float(w.max()) == step


def test_manager_killed_mid_async_save_restores_latest_complete_step(tmp_path):
  _kill_mid_save("manager", tmp_path)
  assert any(TMP in p.name for p in tmp_path.iterdir())  # the kill did land mid-save
  with checkpoint.CheckpointManager(tmp_path) as mngr:
    steps = mngr.all_steps()
    assert steps and all((tmp_path / str(s)).is_dir() for s in steps)
    _check(mngr.restore(target=_target()), steps[-1])
  assert not any(TMP in p.name for p in tmp_path.iterdir())  # leftovers cleaned up


def test_save_killed_midway_leaves_no_checkpoint_and_earlier_ones_intact(tmp_path):
  _kill_mid_save("save", tmp_path)
  tmp = [p for p in tmp_path.iterdir() if TMP in p.name]
  assert tmp
  unfinished = tmp_path / tmp[0].name.split(TMP)[0]
  assert not unfinished.exists()
  with pytest.raises(checkpoint.CheckpointNotFoundError):
    checkpoint.restore(unfinished)
  for path in _committed(tmp_path):
    _check(checkpoint.restore(path, _target()), int(path.name.split("_")[1]))


def test_forced_overwrite_killed_midway_keeps_the_previous_checkpoint(tmp_path):
  _kill_mid_save("force", tmp_path, committed=1)
  assert any(TMP in p.name for p in tmp_path.iterdir())
  restored = checkpoint.restore(tmp_path / "ckpt", _target())
  _check(restored, restored["step"])
