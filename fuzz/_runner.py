"""What every fuzz target shares: a seed corpus from valid encodings, then atheris.

A target calls ``run(check_one, seeds)``. Command-line flags go to libFuzzer
(``-max_total_time=15 -timeout=5``...). Without a corpus directory on the command line, the
seeds are written to a fresh temporary directory that libFuzzer starts from (and adds to).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable

import atheris


def run(check_one: Callable[[bytes], None], seeds: Iterable[bytes], defaults=()) -> None:
  """Fuzz ``check_one`` from ``seeds``; ``defaults`` are libFuzzer flags the command line
  may override."""
  seeds = list(seeds)
  argv = list(sys.argv)
  given = {a.split("=")[0] for a in argv[1:]}
  argv[1:1] = [d for d in defaults if d.split("=")[0] not in given]
  if not any(not a.startswith("-") for a in argv[1:]):
    corpus = tempfile.mkdtemp(prefix="flaxen-fuzz-corpus-")
    for i, seed in enumerate(seeds):
      with open(os.path.join(corpus, f"seed-{i}"), "wb") as f:
        f.write(seed)
    argv.append(corpus)
  atheris.Setup(argv, check_one)
  atheris.Fuzz()
