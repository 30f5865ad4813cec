"""The fuzz targets in fuzz/, each run for a bounded time: they must end cleanly.

libFuzzer exits non-zero on a finding (a Python exception other than the flaxen error
the target allows, a wrong value, a crash, a hang past -timeout, running out of memory),
printing the input; here both targets run side by side for FUZZ_SECONDS each.
"""

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
FUZZ_SECONDS = 15
# Where atheris installs from a wheel (the dev extra's marker); elsewhere it needs clang.
WHEELS = sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info < (3, 14)
if not WHEELS:
  pytest.importorskip("atheris", reason="atheris has wheels for Linux x86_64 only")

TARGETS = {"fuzz_serialization.py": ["-timeout=10"], "fuzz_checkpoint.py": ["-timeout=30"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Start every target at once; return {name: (returncode, output)}."""
  procs = {}
  for name, flags in TARGETS.items():
    tmp = tmp_path_factory.mktemp(name.removesuffix(".py"))
    cmd = [sys.executable, str(FUZZ_DIR / name), f"-max_total_time={FUZZ_SECONDS}",
           f"-artifact_prefix={tmp}/", "-print_final_stats=1", *flags]
    env = {**os.environ, "TMPDIR": str(tmp)}
    procs[name] = subprocess.Popen(
      cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      errors="replace",
    )
  results = {}
  for name, proc in procs.items():
    output, _ = proc.communicate(timeout=FUZZ_SECONDS + 120)
    results[name] = (proc.returncode, output)
  return results


@pytest.mark.parametrize("name, min_runs", [("fuzz_serialization.py", 5000),
                                            ("fuzz_checkpoint.py", 50)])
def test_fuzz_target_runs_clean(runs, name, min_runs):
  returncode, output = runs[name]
  assert returncode == 0, output[-6000:]
  done = re.search(r"Done (\d+) runs in (\d+) second", output)
  assert done, output[-3000:]
  executions, seconds = int(done.group(1)), int(done.group(2))
  print(f"{name}: {executions} executions in {seconds} s")
  assert executions >= min_runs and seconds >= FUZZ_SECONDS
