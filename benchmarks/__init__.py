"""flaxen's benchmarks: each measured claim as a ratio against plain JAX in the same process.

Run all of them with ``python -m benchmarks`` (or ``make bench``); pass name filters to run
only the modules whose name contains one of them: ``python -m benchmarks struct``. Each
module runs in a fresh process of its own.

Adding a benchmark: create ``benchmarks/bench_<topic>.py`` with

.. code-block:: python

   from benchmarks.timing import Result, compare

   def run() -> list[Result]:
     return [compare("what is measured", flaxen_fn, reference_fn, target=1.1)]

``flaxen_fn`` and ``reference_fn`` take no arguments and do the same work, one through
flaxen and one through the fastest plain-JAX equivalent (the physical limit).
:func:`benchmarks.timing.compare` warms both up, times them alternately and returns a
:class:`benchmarks.timing.Result` with both medians, the median ratio of back-to-back sample
pairs and the target (``None`` to report a figure without a claim). The runner discovers
every ``bench_*.py`` module, prints one table with the machine it ran on and PASS / MISS
per row, and exits 0 even when a target is missed: the figures are a report, not a test.
It exits 1 only when a module fails to run.
"""
