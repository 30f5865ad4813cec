"""The base class of flaxen's errors and the helpers their messages share."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["FlaxenError", "FlaxError"]


class FlaxenError(Exception):
  """Base class of every error that flaxen raises for a user's mistake.

  Args:
    message: the whole message (subclasses build theirs from what went wrong).
  """

  def __init__(self, message: str = ""):
    super().__init__(message)


# Flax programs catch ``flax.errors.FlaxError``; the same name works here.
FlaxError = FlaxenError


def names(items: Iterable[object]) -> str:
  """``'a', 'b'`` for error messages, or ``(none)``."""
  items = list(items)
  return ", ".join(repr(n) for n in items) if items else "(none)"


def short_repr(value: object, limit: int = 60) -> str:
  """``repr(value)``, cut to ``limit`` characters for an error message."""
  text = repr(value)
  return text if len(text) <= limit else text[: limit - 3] + "..."
