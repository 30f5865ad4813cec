"""PrefetchIterator: read ahead from an iterator in a background thread (deprecated).

Flax deprecates it (data loaders prefetch on their own now); it still works and warns.
"""

from __future__ import annotations

import threading
import warnings
from collections import deque
from collections.abc import Iterator
from typing import Any

__all__ = ["PrefetchIterator"]


class PrefetchIterator:
  """Wraps ``data_iter`` and keeps up to ``buffer_size`` of its items ready.

  A background thread pulls items; an exception raised by ``data_iter`` is re-raised by
  ``next()`` once the items read before it have been returned. :meth:`close` stops the
  thread after its current read.

  Args:
    data_iter: the iterator to read from.
    buffer_size: how many items to read ahead.
  """

  def __init__(self, data_iter: Iterator[Any], buffer_size: int = 1):
    warnings.warn(
      "PrefetchIterator is deprecated (as in Flax): use your data loader's own prefetching "
      "(e.g. tf.data's prefetch, grain's read-ahead).", DeprecationWarning, stacklevel=2,
    )
    self._data_iter = data_iter
    self.buffer_size = buffer_size
    self._buffer: deque = deque()
    self._cond = threading.Condition()
    self._active = True
    self._error: BaseException | None = None
    self._thread = threading.Thread(target=self._fill, daemon=True)
    self._thread.start()

  def __iter__(self) -> PrefetchIterator:
    return self

  def __next__(self) -> Any:
    with self._cond:
      self._cond.wait_for(lambda: self._buffer or not self._active)
      if self._buffer:
        item = self._buffer.popleft()
        self._cond.notify_all()
        return item
      if self._error is not None:
        raise self._error
      raise StopIteration

  def close(self) -> None:
    """Stops reading ahead; items already buffered are dropped."""
    with self._cond:
      self._active = False
      self._buffer.clear()
      self._cond.notify_all()

  def _fill(self) -> None:
    while True:
      try:
        item = next(self._data_iter)
      except Exception as e:  # StopIteration included: handed to the reader in __next__
        with self._cond:
          if not isinstance(e, StopIteration):
            self._error = e
          self._active = False
          self._cond.notify_all()
        return
      with self._cond:
        if not self._active:
          return
        self._buffer.append(item)
        self._cond.notify_all()
        self._cond.wait_for(lambda: len(self._buffer) < self.buffer_size or not self._active)
        if not self._active:
          return
