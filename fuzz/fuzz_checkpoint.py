"""Fuzz target: ``flaxen.checkpoint.restore`` of a checkpoint with one file's bytes replaced.

A small valid orbax checkpoint is saved once. An input is ``[file index] + new contents``:
the chosen file of a working copy is overwritten, the checkpoint restored (into the saved
tree's structure, and with ``target=None``), and the file put back. Each restore must
raise a :class:`flaxen.errors.CheckpointError` or return exactly what was saved. Anything
else (another exception, a crash, a hang past ``-timeout``, a wrong value) is a finding.
Seeds are each file's valid bytes.

Run: ``python fuzz/fuzz_checkpoint.py -max_total_time=60 -timeout=10``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings

import _runner
import atheris

# With FUZZ_ORBAX=1 (make fuzz), orbax's Python (metadata parsing, tree building) is
# instrumented too, to guide longer runs; it costs several seconds of startup.
INSTRUMENT = ["flaxen"] + (["orbax.checkpoint"] if os.environ.get("FUZZ_ORBAX") else [])
with atheris.instrument_imports(include=INSTRUMENT):
  import jax
  import numpy as np

  from flaxen import checkpoint, errors

SAVED = {
  "params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([-1, 2], np.int8)},
  "step": 7,
}
ROOT = tempfile.mkdtemp(prefix="flaxen-fuzz-ckpt-")
BASE, WORK = os.path.join(ROOT, "base"), os.path.join(ROOT, "work")
checkpoint.save(BASE, SAVED)
shutil.copytree(BASE, WORK)
FILES = sorted(os.path.relpath(os.path.join(d, f), BASE) for d, _, fs in os.walk(BASE) for f in fs)
ORIGINAL = [open(os.path.join(BASE, f), "rb").read() for f in FILES]


def _same(value, expected) -> None:
  assert jax.tree.structure(value) == jax.tree.structure(expected), (value, expected)
  for v, e in zip(jax.tree.leaves(value), jax.tree.leaves(expected), strict=True):
    assert type(v) is type(e) and np.asarray(v).dtype == np.asarray(e).dtype, (v, e)
    assert np.array_equal(np.asarray(v), np.asarray(e)), (v, e)


def check_one(data: bytes) -> None:
  if not data:
    return
  index = data[0] % len(FILES)
  path = os.path.join(WORK, FILES[index])
  with open(path, "wb") as f:
    f.write(data[1:])
  try:
    for target in (SAVED, None):
      try:
        value = checkpoint.restore(WORK, target)
      except errors.CheckpointError:
        continue
      # target=None gives orbax's own tree: the same dicts, and the Python int as an int.
      _same(value, SAVED)
  finally:
    with open(path, "wb") as f:
      f.write(ORIGINAL[index])


if __name__ == "__main__":
  warnings.simplefilter("ignore", RuntimeWarning)  # orbax's "coroutine never awaited" on errors
  seeds = [bytes([i]) + b for i, b in enumerate(ORIGINAL)]
  # Most of a checkpoint's parsing is C++ (tensorstore), which coverage does not see: keep
  # the whole valid files as the inputs to mutate, rather than shorter ones libFuzzer
  # would prefer for the same coverage.
  longest = max(len(s) for s in seeds)
  _runner.run(check_one, seeds, [f"-max_len={2 * longest}", "-len_control=0",
                                 "-reduce_inputs=0"])
