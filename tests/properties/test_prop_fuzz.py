"""The fuzz targets in fuzz/, each run for a bounded time: they must end cleanly.

libFuzzer exits non-zero on a finding (a Python exception other than the flaxen error
the target allows, a wrong value, a crash, a hang past -timeout, running out of memory),
printing the input. Both targets run side by side for FUZZ_SECONDS, in one test so that
pytest-xdist never starts them twice.
"""

import os
import platform
import re
import resource
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

# target -> (its -timeout per input, the fewest executions a healthy run reaches)
TARGETS = {"fuzz_serialization.py": (10, 5000), "fuzz_checkpoint.py": (30, 50)}


def rss_limit_mb() -> int:
  """libFuzzer's memory limit (2 GiB by default) is on the process's peak RSS, which Linux
  carries over from this pytest worker through fork and exec: a worker that has run the
  rest of the suite starts the fuzzer at its own peak. Allow 2 GiB above that."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 2048


def start(name: str, timeout: int, tmp: Path) -> subprocess.Popen:
  cmd = [sys.executable, str(FUZZ_DIR / name), f"-max_total_time={FUZZ_SECONDS}",
         f"-timeout={timeout}", f"-artifact_prefix={tmp}/", "-print_final_stats=1",
         f"-rss_limit_mb={rss_limit_mb()}"]
  return subprocess.Popen(cmd, env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace")


def test_fuzz_targets_run_clean(tmp_path):
  procs = {}
  for name, (timeout, _) in TARGETS.items():
    (tmp_path / name).mkdir()
    procs[name] = start(name, timeout, tmp_path / name)
  for name, proc in procs.items():
    output, _ = proc.communicate(timeout=FUZZ_SECONDS + 180)
    assert proc.returncode == 0, f"{name} found something:\n{output[-6000:]}"
    done = re.search(r"Done (\d+) runs in (\d+) second", output)
    assert done, output[-3000:]
    executions, seconds = int(done.group(1)), int(done.group(2))
    print(f"{name}: {executions} executions in {seconds} s")
    assert executions >= TARGETS[name][1] and seconds >= FUZZ_SECONDS
