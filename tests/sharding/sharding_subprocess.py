"""Run a Python snippet in a fresh interpreter that sees N simulated CPU devices.

The device count of a JAX process is fixed when JAX starts, so multi-device checks run in a
subprocess and the rest of the suite keeps its single device. The snippet reports with
``emit(value)`` (any JSON value); ``run_on_devices`` returns the last value emitted. Batch
many checks into one snippet: each subprocess pays for a JAX start-up.

    from sharding_subprocess import run_on_devices
    out = run_on_devices("import jax\\nemit(len(jax.devices()))", n_devices=4)
    assert out == 4

Other test folders import it with ``sys.path.insert(0, str(<repo>/tests/sharding))``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

MARK = "@@emit@@ "
PRELUDE = f"""
import json as _json
def emit(value):
  print({MARK!r} + _json.dumps(value), flush=True)
"""


def run_on_devices(code: str, n_devices: int = 8, timeout: float = 300,
                   env: dict[str, str] | None = None) -> Any:
  """Run ``code`` with ``n_devices`` CPU devices and return the last ``emit``-ted value.

  Raises:
    AssertionError: the snippet failed (its stderr tail is in the message) or emitted nothing.
  """
  flags = os.environ.get("XLA_FLAGS", "")
  full_env = dict(os.environ, JAX_PLATFORMS="cpu",
                  XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count={n_devices}".strip())
  full_env.update(env or {})
  result = subprocess.run(
    [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
    env=full_env, capture_output=True, text=True, timeout=timeout,
  )
  assert result.returncode == 0, f"snippet failed:\n{result.stderr[-4000:]}"
  lines = [ln for ln in result.stdout.splitlines() if ln.startswith(MARK)]
  assert lines, f"snippet emitted nothing; stdout:\n{result.stdout[-2000:]}"
  return json.loads(lines[-1][len(MARK):])
