"""``broadcast``: the ``in_axes`` marker of a scan argument passed whole to every step."""

from __future__ import annotations

from typing import Any

__all__ = ["broadcast"]


class _Broadcast:
  """The type of :data:`broadcast`."""

  def __repr__(self) -> str:
    return "nn.broadcast"


broadcast: Any = _Broadcast()
