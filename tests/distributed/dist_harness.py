"""Running multi-device checks in subprocesses with simulated CPU devices.

The test process keeps its single device; a check script runs with
``--xla_force_host_platform_device_count=N`` and reports one result per named check as a
JSON line, so one subprocess (one jax start, shared compilations) serves many tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "DIST-RESULTS "


def device_env(devices: int) -> dict[str, str]:
  """The environment of a CPU-only jax process with ``devices`` simulated devices.

  XLA's backend optimizations are off: they halve the compile time of these tiny programs,
  and every comparison is between programs compiled alike.
  """
  flags = f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"
  return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=flags)


def run_checks(script: Path, *args: str, devices: int = 8, timeout: float = 240) -> dict:
  """Run ``script`` on ``devices`` devices; its results by check name ("ok" or the error)."""
  proc = subprocess.run([sys.executable, str(script), *args], env=device_env(devices),
                        capture_output=True, text=True, timeout=timeout, cwd=ROOT)
  for line in proc.stdout.splitlines():
    if line.startswith(MARKER):
      return json.loads(line[len(MARKER):])
  raise AssertionError(f"{script.name} exited with {proc.returncode} before reporting:\n"
                       f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def report(checks: dict[str, Callable[[], None]], only: list[str] | None = None) -> None:
  """Run each check (in order: later ones may use what earlier ones left), or those named in
  ``only``, and print the results."""
  results = {}
  unknown = set(only or ()) - set(checks)
  assert not unknown, f"no such checks: {sorted(unknown)}"
  for name, check in checks.items():
    if only and name not in only:
      continue
    start, cpu = time.perf_counter(), time.process_time()
    try:
      check()
      results[name] = "ok"
    except Exception:  # reported to the test that asserts on this check
      results[name] = traceback.format_exc(limit=-6)
    print(f"{name}: {time.perf_counter() - start:.1f} s, cpu {time.process_time() - cpu:.1f} s",
          flush=True)
  print(MARKER + json.dumps(results), flush=True)


def free_port() -> int:
  """A TCP port on the loopback interface that nothing listens on right now."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def load_example(name: str, file: str):
  """An example script as a module (its folder is not a package)."""
  import importlib.util

  module_name = f"_example_{name}_{Path(file).stem}"
  if module_name in sys.modules:
    return sys.modules[module_name]
  spec = importlib.util.spec_from_file_location(module_name, ROOT / "examples" / name / file)
  module = importlib.util.module_from_spec(spec)
  sys.modules[module_name] = module  # dataclasses look their module up here
  spec.loader.exec_module(module)
  return module
