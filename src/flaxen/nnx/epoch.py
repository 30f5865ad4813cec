"""A process-wide counter of structural changes to graph objects.

A change of structure (an attribute holding a Module or Variable set or deleted, a static
attribute changed, a container mutated, Variable metadata changed) to an object that a
transform cache has recorded bumps it; objects no cache knows about (say, ones built for
this step) leave it alone. Transforms cache per input structure and re-validate only when
it has moved, so an unchanged training loop pays one integer comparison per call.

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
