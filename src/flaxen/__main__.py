"""``python -m flaxen run prog.py [args...]``: run a Flax program on flaxen, unedited.

Also ``python -m flaxen run -m package.module [args...]``. The program sees the ``sys.argv``
and ``sys.path[0]`` that ``python prog.py args...`` would give it, and every
``import flax...`` in the process (its own and its libraries') imports flaxen's module at
the same path (see :mod:`flaxen.flax_alias`).
"""

from __future__ import annotations

import os
import runpy
import sys

USAGE = """usage: python -m flaxen run prog.py [args...]
       python -m flaxen run -m module [args...]

Runs a program written for Flax on flaxen without editing it: every `import flax...`
imports flaxen's module at the same path."""


def main(argv: list[str]) -> int:
  if len(argv) < 2 or argv[0] != "run" or (argv[1] == "-m" and len(argv) < 3):
    print(USAGE, file=sys.stderr)
    return 0 if argv[:1] in (["-h"], ["--help"]) else 2
  from flaxen.flax_alias import install_as_flax

  install_as_flax()
  if argv[1] == "-m":
    sys.argv = [argv[2], *argv[3:]]
    sys.path.insert(0, os.getcwd())
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
  else:
    prog = argv[1]
    sys.argv = [prog, *argv[2:]]
    sys.path[0] = os.path.dirname(os.path.abspath(prog))
    runpy.run_path(prog, run_name="__main__")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
