"""Errors of NNX's tree mode (``graph=False``): what a graph may hold there and not in it."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError

__all__ = ["SharedReferenceError", "NotAPytreeError", "StaticDataError"]


def _path(path: tuple) -> str:
  return "/".join(str(k) for k in path) or "<root>"


class SharedReferenceError(FlaxenError, ValueError):
  """Tree mode (``graph=False``) found one object at two paths (a shared Variable or Module,
  or a cycle)."""

  def __init__(self, cls: type, first: tuple, second: tuple):
    self.paths = (first, second)
    super().__init__(
      f"Tree mode (graph=False) treats the graph as a pytree, which cannot share a node, but "
      f"the same {cls.__name__} was found at paths {_path(first)!r} and "
      f"{_path(second)!r}. Fix: pass graph=True (or use nnx.compat / "
      "nnx.set_graph_mode(True)) to keep shared references, or give each path its own copy."
    )


class NotAPytreeError(FlaxenError, ValueError):
  """Tree mode (``graph=False``) met an object of a class declared with ``pytree=False``."""

  def __init__(self, cls: type, path: tuple):
    self.path = path
    super().__init__(
      f"{cls.__name__} was declared with pytree=False, so tree mode (graph=False) "
      f"cannot flatten it. Found at path {_path(path)!r}. Fix: pass graph=True, or drop "
      "pytree=False from the class."
    )


class StaticDataError(FlaxenError, ValueError):
  """A value holding arrays, Variables or graph objects was marked static (``nnx.static``,
  a static field, or an attribute marked static before)."""

  def __init__(self, value: object, name: str | None, *, field: bool):
    self.name = name
    kind = type(value).__name__
    if name is None:
      found = f"Found data in value of type {kind} given to nnx.static"
    elif field:
      found = f"Found unexpected data on value of type {kind} for the static field {name!r}"
    else:
      found = (f"Found data on value of type {kind} assigned to {name!r}, an attribute "
               "marked static")
    super().__init__(
      f"{found}. Static values are hashed into the GraphDef and never traced. Fix: mark it "
      "data (`nnx.data(value)`, an `nnx.data()` field), or keep arrays and Variables out of "
      "it."
    )
