"""Importing flaxen leaves jax's backend unstarted, so jax.distributed.initialize, which
must come before the backend starts, can still follow the imports (Flax programs import
first and initialize in main)."""

import subprocess
import sys

from dist_harness import ROOT, device_env, free_port

IMPORT_THEN_INITIALIZE = """
import sys
import {module}
import jax
jax.distributed.initialize(f"127.0.0.1:{{sys.argv[1]}}", num_processes=1, process_id=0,
                           initialization_timeout=30)
assert jax.process_count() == 1
jax.distributed.shutdown()
"""


def import_then_initialize(module):
  proc = subprocess.run(
    [sys.executable, "-c", IMPORT_THEN_INITIALIZE.format(module=module), str(free_port())],
    env=device_env(1), cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]


def test_import_linen_checkpoint_train_state_then_initialize():
  import_then_initialize("flaxen.linen, flaxen.checkpoint, flaxen.training.train_state")


def test_import_nnx_then_initialize():
  import_then_initialize("flaxen.nnx")
