"""Errors of ``flaxen.cursor``."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError

__all__ = ["CursorFindError", "TraverseTreeError"]


class CursorFindError(FlaxenError, ValueError):
  """``Cursor.find`` matched no node, or more than one."""

  def __init__(self, cursor: object = None, cursor2: object = None):
    if cursor is None:
      what = "no node satisfies cond_fn"
    else:
      what = (f"more than one node satisfies cond_fn (at least {cursor._path!r} and "  # type: ignore[attr-defined]
              f"{cursor2._path!r})")  # type: ignore[attr-defined]
    super().__init__(
      f"Cursor.find: {what}. Fix: make cond_fn match exactly one path, or use find_all."
    )


class TraverseTreeError(FlaxenError, TypeError):
  """``Cursor.apply_update`` / ``find`` / ``find_all`` got something that is not a function."""

  def __init__(self, update_fn: object, cond_fn: object):
    got = f"update_fn={update_fn!r}" if cond_fn is None else f"cond_fn={cond_fn!r}"
    super().__init__(
      f"A cursor walk calls a function on every (path, value); got {got}. Fix: pass a "
      "function of (path: str, value), e.g. `lambda path, value: 'kernel' in path`."
    )
