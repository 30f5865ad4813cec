"""Two processes (4 simulated CPU devices each) train data-parallel like one process does,
and the checkpoint they save together restores in one process."""

import subprocess
import sys
import time

import numpy as np
from dist_harness import ROOT, device_env, free_port
from dist_worker import PROCESSES, STEPS, flat, single_process

from flaxen import checkpoint
from flaxen.core import meta

WORKER = ROOT / "tests" / "distributed" / "dist_worker.py"
TIMEOUT = 150  # seconds for both processes together, start to finish


def load(path):
  with np.load(path) as npz:
    return dict(npz)


def test_two_processes_end_with_the_single_process_params(tmp_path):
  port = free_port()
  procs = [subprocess.Popen([sys.executable, str(WORKER), str(i), str(port), str(tmp_path)],
                            env=device_env(4), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(PROCESSES)]
  deadline = time.monotonic() + TIMEOUT
  try:
    want_losses, want_state = single_process()  # meanwhile, in this process, on one device
    outputs = [p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0] for p in procs]
  finally:
    for p in procs:  # a timeout or failure must not leave a process waiting on its peer
      if p.poll() is None:
        p.kill()
        p.wait()
  for p, out in zip(procs, outputs, strict=True):
    assert p.returncode == 0, out[-4000:]

  want = {k: np.asarray(x) for k, x in flat(meta.unbox(want_state.params)).items()}
  got = [load(tmp_path / f"process{i}.npz") for i in range(PROCESSES)]
  assert len(got[0]["losses"]) == STEPS
  assert sorted(got[0]) == sorted(["losses", *want])
  for name in got[0]:  # the processes agree bit for bit
    np.testing.assert_array_equal(got[0][name], got[1][name], err_msg=name)
  np.testing.assert_allclose(got[0]["losses"], want_losses, rtol=2e-5)
  for name, value in want.items():  # and equal one process up to float32 rounding
    np.testing.assert_allclose(got[0][name], value, rtol=2e-5, atol=2e-6, err_msg=name)

  # The checkpoint both processes saved restores here, on one device, with their params.
  restored = checkpoint.restore(tmp_path / "checkpoint", want_state)
  assert int(restored.step) == STEPS
  for name, value in flat(meta.unbox(restored.params)).items():
    np.testing.assert_array_equal(value, got[0][name], err_msg=name)
