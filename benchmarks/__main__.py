"""``python -m benchmarks [name-filter...]``: run the bench_*.py modules, print one table.

Each module runs in a process of its own, so that none is timed on a heap that the modules
before it filled and fragmented (the graph operations read up to 1.9x slower that way).
"""

from __future__ import annotations

import importlib
import os
import pickle
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
from rich.console import Console
from rich.table import Table

from benchmarks.timing import Result


def module_names(filters: list[str]) -> list[str]:
  """The bench_* modules of this package whose name contains one of ``filters`` (any if none)."""
  names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
  return [n for n in names if not filters or any(f in n for f in filters)]


def machine() -> str:
  devices = jax.devices()
  return (
    f"{platform.platform()} | {platform.processor() or platform.machine()} | "
    f"{os.cpu_count()} CPUs | Python {platform.python_version()} | jax {jax.__version__} | "
    f"backend {jax.default_backend()} ({len(devices)}x {devices[0].device_kind})"
  )


def format_time(seconds: float) -> str:
  for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
    if seconds >= scale:
      return f"{seconds / scale:.3g} {unit}"
  return f"{seconds / 1e-9:.3g} ns"


def format_bytes(n: float) -> str:
  for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if n >= scale:
      return f"{n / scale:.3g} {unit}"
  return f"{n:.3g} B"


def verdict(result: Result) -> str:
  return {None: "-", True: "[green]PASS[/]", False: "[red]MISS[/]"}[result.passed]


def table(rows: list[tuple[str, Result]]) -> Table:
  t = Table(title="flaxen vs plain JAX (median time per call)")
  for col in ("module", "benchmark", "flaxen", "JAX", "ratio", "target", "", "unit / notes"):
    t.add_column(col, justify="right" if col in ("flaxen", "JAX", "ratio", "target") else "left")
  for module, r in rows:
    target = "-" if r.target is None else f"≤ {r.target:.2f}x"
    if r.max_s is not None:
      limit = f"≤ {format_time(r.max_s)}"
      target = limit if r.target is None else f"{target}, {limit}"
    notes = f"{r.unit}; {r.notes}" if r.notes else r.unit
    fmt = format_bytes if r.quantity == "memory" else format_time
    t.add_row(
      module, r.name, fmt(r.flaxen_s), fmt(r.reference_s), f"{r.ratio:.2f}x",
      target, verdict(r), notes,
    )
  return t


def run_module(name: str) -> list[Result] | None:
  """The results of one module, run in a fresh process; ``None`` if it crashed (its
  traceback went to stderr)."""
  with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "results.pickle"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--module", name, str(out)],
                          check=False)
    if done.returncode != 0 or not out.exists():
      return None
    return pickle.loads(out.read_bytes())


def main(argv: list[str]) -> int:
  if argv[:1] == ["--module"]:  # the child process of run_module
    _, name, out = argv
    Path(out).write_bytes(pickle.dumps(importlib.import_module(f"benchmarks.{name}").run()))
    return 0
  # Keep the table readable when the output is a file or a pipe (default: 80 columns).
  console = Console() if sys.stdout.isatty() else Console(width=150)
  console.print(f"[bold]machine:[/] {machine()}")
  names = module_names(argv)
  if not names:
    console.print(f"No benchmark module matches {argv}.")
    return 1
  rows, failed = [], []
  for name in names:
    console.print(f"running {name} ...")
    results = run_module(name)
    if results is None:  # reported by the child; go on with the other modules
      console.print(f"[red]{name} failed[/] (traceback above)")
      failed.append(name)
      continue
    rows += [(name.removeprefix("bench_"), r) for r in results]
  console.print(table(rows))
  missed = [r.name for _, r in rows if r.passed is False]
  console.print(f"{len(rows)} results, {len(missed)} missed target, {len(failed)} modules failed.")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
