"""examples/sharding/train.py runs as a script on its 8 simulated devices, prints the mesh
and each param's sharding, and its loss falls (few steps; the slow test: the defaults)."""

import os
import re
import subprocess
import sys

import pytest
from dist_harness import ROOT

EXAMPLE = ROOT / "examples" / "sharding" / "train.py"


def run_example(*args: str, timeout: float = 240) -> str:
  # The script adds the device count to XLA_FLAGS itself; we only make compiling cheaper.
  env = dict(os.environ, XLA_FLAGS="--xla_backend_optimization_level=0")
  proc = subprocess.run([sys.executable, str(EXAMPLE), *args], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return proc.stdout


def losses(out: str) -> list[float]:
  return [float(x) for x in re.findall(r"step +\d+ +loss ([\d.]+)", out)]


def test_example_shards_and_learns():
  out = run_example("--steps", "30", "--log-every", "10", "--length", "8", "--batch-size", "16")
  assert "8 devices; mesh {'data': 2, 'model': 4}; parallel tp" in out
  # Megatron layout in the param table: MLP columns then rows, q/k/v by heads.
  assert re.search(r"Block_0/Dense_0/kernel +│ \(32, 128\) +│ P\(None, 'model'\)", out)
  assert re.search(r"Block_0/Dense_1/kernel +│ \(128, 32\) +│ P\('model', None\)", out)
  assert re.search(r"SelfAttention_0/query/kernel +│ \(32, 4, 8\) +│ P\(None, 'model', None\)",
                   out)
  got = losses(out)
  assert len(got) == 3 and got[-1] < got[0]


@pytest.mark.slow
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_example_defaults(api):
  got = losses(run_example("--api", api, timeout=900))
  assert got[-1] < 0.5 * got[0]
