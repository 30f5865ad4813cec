"""Tree mode (``graph=False``): the graph must be a pytree.

Tree mode and graph mode share one walk (``graph.walk``); tree mode adds a check of the
GraphDef that it made: no node reached twice (a shared Variable or Module, or a cycle) and
no Object of a class declared with ``pytree=False``. The check runs once per GraphDef (a
cached walk hands back the same one), so a repeated tree-mode ``split`` costs what a
graph-mode one does.

>>> import jax.numpy as jnp
>>> from flaxen import errors, nnx
>>> v = nnx.Param(jnp.zeros(1))
>>> try:
...   nnx.split([v, v], graph=False)
... except errors.SharedReferenceError as e:
...   e.paths
((0,), (1,))
"""

from __future__ import annotations

from typing import Any

import jax

from flaxen.errors.nnx_tree import NotAPytreeError, SharedReferenceError
from flaxen.nnx.graph import _unwrap

__all__ = ["check_tree"]

# Mutable array references (``jax.new_ref``) are static to the walk, but shared ones alias
# state just as a shared Variable does.
_REF_TYPES = tuple(t for t in (getattr(jax, "Ref", None),) if isinstance(t, type))


def check_tree(graphdef: Any) -> Any:
  """Raises if the graph ``graphdef`` describes is not a valid pytree; returns it."""
  if not graphdef._tree:
    _scan(graphdef.root, (), {})
    graphdef._tree = True
  return graphdef


def _scan(entry: tuple, path: tuple, seen: dict[Any, tuple]) -> None:
  # ``seen``: node index -> (class, first path), for the ``ref`` entries that follow.
  tag = entry[0]
  if tag == "ref":
    cls, first = seen[entry[1]]
    raise SharedReferenceError(cls, first, path)
  if tag == "var":
    seen[entry[1]] = (entry[2], path)
  elif tag == "static":
    value = _unwrap(entry[1])
    if _REF_TYPES and isinstance(value, _REF_TYPES):
      key = ("ref", id(value))
      if key in seen:
        raise SharedReferenceError(type(value), seen[key][1], path)
      seen[key] = (type(value), path)
  elif tag == "node":
    cls = entry[2]
    if not getattr(cls, "_nnx_pytree", True):
      raise NotAPytreeError(cls, path)
    seen[entry[1]] = (cls, path)
    for key, sub in entry[4]:
      _scan(sub, (*path, key), seen)
  elif tag in ("dict", "list", "tuple"):
    for key, sub in entry[1]:
      _scan(sub, (*path, key), seen)
  elif tag == "pytree":
    for key, sub in entry[2]:
      _scan(sub, (*path, key), seen)
