"""Keeping orbax's logging out of the way while flaxen.checkpoint calls it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def orbax_logs() -> Iterator[None]:
  yield
