"""Keeping orbax's logging out of the way while flaxen.checkpoint calls it.

orbax logs through absl at INFO and WARNING for routine events, and a checkpoint that
fails to read also leaves asyncio's "... exception was never retrieved" records for each
of its parallel reads. flaxen raises one clear error instead, so during its calls into
orbax it drops absl records below ERROR and those asyncio records. absl errors still show.
(Reports of futures that outlive the call, held by the raised error's traceback, can
still appear when it is garbage collected.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

# asyncio's report for a Task, Future or _GatheringFuture that failed with nobody awaiting.
_ASYNCIO_NOISE = "exception was never retrieved"


class _DropUnretrievedTasks(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    return _ASYNCIO_NOISE not in record.getMessage()


_FILTER = _DropUnretrievedTasks()


@contextlib.contextmanager
def orbax_logs() -> Iterator[None]:
  """Within this context, orbax's routine logging is silenced; its errors are not."""
  absl, asyncio = logging.getLogger("absl"), logging.getLogger("asyncio")
  level = absl.level
  absl.setLevel(max(level, logging.ERROR))
  asyncio.addFilter(_FILTER)
  try:
    yield
  finally:
    absl.setLevel(level)
    asyncio.removeFilter(_FILTER)
