"""Errors of ``flaxen.config``: unknown flags, wrong value types, bad environment values."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError

__all__ = ["ConfigFlagError"]


class ConfigFlagError(FlaxenError, LookupError, ValueError):
  """A config flag was misnamed, given a value of the wrong type, or set badly in the environment.

  ``name`` is the flag (or environment variable) involved.
  """

  def __init__(self, name: str, problem: str, fix: str):
    self.name = name
    super().__init__(f"flaxen.config {name!r}: {problem}. Fix: {fix}.")
