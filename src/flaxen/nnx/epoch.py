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

import weakref
from collections.abc import Iterable
from typing import Any

_value = 0


def bump() -> None:
  """Records that some graph's structure changed."""
  global _value
  _value += 1


def current() -> int:
  """The number of structural changes so far."""
  return _value


class Recorded:
  """A cache entry recorded against the epoch and the versions of its graph's objects:
  valid while the epoch has not moved or, when it has, while each object keeps its version
  (a structural change bumps the object's ``_nnx_version``)."""

  __slots__ = ("epoch", "versions")

  def record(self, objects: Iterable[Any]) -> None:
    """Note the objects' versions now, and mark them so their structural changes move the
    epoch from here on."""
    self.epoch = _value
    self.versions = [(weakref.ref(r), r.__dict__["_nnx_version"]) for r in objects]
    for r in objects:
      r.__dict__["_nnx_tracked"] = True

  def current(self) -> bool:
    """Whether the recorded structure still holds (one integer comparison when nothing
    anywhere changed)."""
    return self.epoch == _value or self.unchanged()

  def unchanged(self) -> bool:
    """After a structural change somewhere: whether none was made to these objects."""
    for ref, version in self.versions:
      obj = ref()
      if obj is None or obj.__dict__["_nnx_version"] != version:
        return False
    self.epoch = _value
    return True
