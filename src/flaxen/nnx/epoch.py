"""A process-wide counter of structural changes to graph objects.

Any change of a graph's structure (an attribute holding a Module or Variable set or
deleted, a static attribute changed, a container mutated, Variable metadata changed) bumps
it. Transforms cache per input structure and re-validate only when it has moved, so an
unchanged training loop pays one integer comparison per call.

>>> from flaxen.nnx import epoch
>>> before = epoch.current()
>>> epoch.bump()
>>> epoch.current() == before + 1
True
"""

from __future__ import annotations

_value = 0


def bump() -> None:
  """Records that some graph's structure changed."""
  global _value
  _value += 1


def current() -> int:
  """The number of structural changes so far."""
  return _value
