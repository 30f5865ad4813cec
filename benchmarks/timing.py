"""Timing helpers shared by the benchmark modules.

>>> r = compare("noop", lambda: None, lambda: None, target=1.5, repeats=3, min_sample_s=1e-4)
>>> r.name, r.target, r.ratio > 0
('noop', 1.5, True)
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


@dataclasses.dataclass(frozen=True)
class Result:
  """One measured claim: flaxen's time against plain JAX doing the same work.

  Attributes:
    name: what was measured, e.g. ``"struct flatten+unflatten, 1 instance"``.
    flaxen_s: median seconds per call of the flaxen version.
    reference_s: median seconds per call of the plain-JAX reference.
    target: the ratio ``flaxen_s / reference_s`` must not exceed this to PASS; ``None``
      when the figure is only reported.
    unit: what one call does, e.g. ``"per tree"``.
    notes: anything a reader needs to interpret the figure.
    quantity: ``"time"`` (seconds) or ``"memory"`` (bytes in the two figure fields).
    max_s: an absolute target: ``flaxen_s`` must not exceed it to PASS (with ``target``,
      both must hold); e.g. ``dataclasses.replace(compare(...), max_s=3e-3)``.
    paired_ratio: the median of the ratios of samples taken back to back (see
      :func:`compare`); when given, it is the row's ratio.
  """

  name: str
  flaxen_s: float
  reference_s: float
  target: float | None = None
  unit: str = "per call"
  notes: str = ""
  quantity: str = "time"
  max_s: float | None = None
  paired_ratio: float | None = None

  @property
  def ratio(self) -> float:
    if self.paired_ratio is not None:
      return self.paired_ratio
    return self.flaxen_s / self.reference_s

  @property
  def passed(self) -> bool | None:
    """Whether the ratio and ``max_s`` targets are met (``None`` without a target)."""
    checks = [self.ratio <= self.target] if self.target is not None else []
    if self.max_s is not None:
      checks.append(self.flaxen_s <= self.max_s)
    return all(checks) if checks else None


def _sample(fn: Callable[[], Any], number: int, clock: Callable[[], float] = time.perf_counter
            ) -> float:
  """Seconds per call over ``number`` back-to-back calls, waiting for JAX results."""
  start = clock()
  for _ in range(number):
    out = fn()
  jax.block_until_ready(out)
  return (clock() - start) / number


def _calls_per_sample(fn: Callable[[], Any], min_sample_s: float,
                      clock: Callable[[], float] = time.perf_counter) -> int:
  number = 1
  while (elapsed := _sample(fn, number, clock) * number) < min_sample_s:
    number *= max(2, min(10, int(min_sample_s / max(elapsed, 1e-9))))
  return number


def compare(
  name: str,
  flaxen_fn: Callable[[], Any],
  reference_fn: Callable[[], Any],
  *,
  target: float | None = None,
  unit: str = "per call",
  notes: str = "",
  repeats: int = 31,
  warmup: int = 3,
  min_sample_s: float = 0.005,
  clock: Callable[[], float] = time.perf_counter,
) -> Result:
  """Time two zero-argument callables doing the same work; return their medians.

  Each is called ``warmup`` times first (compiling whatever jit would compile), then
  ``repeats`` samples of each are taken alternately, flaxen then reference, then the other
  way round, so that drift of the machine (frequency scaling, other processes) hits both
  alike. A sample runs as many back-to-back calls as make it last ``min_sample_s`` and
  blocks on the last result with :func:`jax.block_until_ready`. As with :mod:`timeit`, the
  cyclic garbage collector is off while timing, so that a collection triggered by one
  callable's garbage is not charged to the other.

  The ratio is the median over repeats of flaxen's sample divided by the reference sample
  taken next to it, not the ratio of the two medians: a slow spell of the machine then
  hits both halves of a pair, and two runs of the same compiled program read 1.00x
  within 1% on a 2-CPU VM where the ratio of medians swung by 9%.

  Args:
    name: the row's name.
    flaxen_fn: the flaxen version.
    reference_fn: the plain-JAX version.
    target: the ratio to meet, or ``None`` to report only.
    unit: what one call does.
    notes: shown next to the figures.
    repeats: samples per callable; the median is reported.
    warmup: calls before timing.
    min_sample_s: the least duration of one sample.
    clock: what is measured; ``time.process_time`` (CPU time of this process) suits pure
      Python work on a machine shared with other jobs, where wall time mostly measures the
      wait for a core.

  Returns:
    The :class:`Result`.
  """
  for fn in (flaxen_fn, reference_fn):
    for _ in range(warmup):
      jax.block_until_ready(fn())
  numbers = [_calls_per_sample(fn, min_sample_s, clock) for fn in (flaxen_fn, reference_fn)]
  times: tuple[list[float], list[float]] = ([], [])
  gc_was_enabled = gc.isenabled()
  gc.collect()
  gc.disable()
  try:
    for r in range(repeats):
      order = (0, 1) if r % 2 == 0 else (1, 0)
      for i in order:
        times[i].append(_sample((flaxen_fn, reference_fn)[i], numbers[i], clock))
  finally:
    if gc_was_enabled:
      gc.enable()
  pairs = [f / r for f, r in zip(*times, strict=True)]
  return Result(name, statistics.median(times[0]), statistics.median(times[1]), target, unit,
                notes, paired_ratio=statistics.median(pairs))
