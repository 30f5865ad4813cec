"""Flattening nested dicts to path-keyed dicts and back, and path-aware maps.

>>> from flaxen import traverse_util
>>> params = {"Dense_0": {"kernel": 1, "bias": 2}, "scale": 3}
>>> flat = traverse_util.flatten_dict(params, sep="/")
>>> flat
{'Dense_0/kernel': 1, 'Dense_0/bias': 2, 'scale': 3}
>>> traverse_util.unflatten_dict(flat, sep="/") == params
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flaxen.errors.nested import FlatKeyError, NotAMappingError, PathConflictError

__all__ = [  # noqa: F405 (the Traversal names come from flaxen.traversal, imported below)
  "empty_node", "flatten_dict", "unflatten_dict", "path_aware_map", "Traversal", "TraverseId",
  "TraverseMerge", "TraverseCompose", "TraverseFilter", "TraverseAttr", "TraverseItem",
  "TraverseEach", "TraverseTree", "ModelParamTraversal", "t_identity",
]


class _EmptyNode:
  """Stands for an empty dict in a flattened dict, so it survives a round trip."""

  def __repr__(self) -> str:
    return "empty_node"

  def __reduce__(self):
    return "empty_node"


empty_node = _EmptyNode()

Path = tuple[Any, ...]


def flatten_dict(
  xs: Mapping,
  keep_empty_nodes: bool = False,
  is_leaf: Callable[[Path, Any], bool] | None = None,
  sep: str | None = None,
) -> dict:
  """Flatten a nested mapping into a dict keyed by paths.

  Args:
    xs: the nested mapping (dicts, FrozenDicts, any Mapping).
    keep_empty_nodes: keep an empty sub-mapping as the value :data:`empty_node`.
    is_leaf: ``(path, value) -> bool``, called for every mapping (the root too, with the
      path ``()``); a mapping for which it is true stays a leaf.
    sep: join path keys with this separator; by default keys are tuples.

  Returns:
    A flat dict from path (tuple, or string when ``sep`` is given) to leaf.
  """
  if not isinstance(xs, Mapping):
    raise NotAMappingError("flatten_dict", xs, "pass the nested dict itself (e.g. "
                           "variables['params']); for other pytrees use jax.tree_util")
  if is_leaf and is_leaf((), xs):
    return {_key((), sep): xs}
  flat: dict = {}

  def visit(node: Mapping, prefix: Path) -> None:
    for key, value in node.items():
      path = (*prefix, key)
      if isinstance(value, Mapping) and not (is_leaf and is_leaf(path, value)):
        if value:
          visit(value, path)
        elif keep_empty_nodes:
          flat[_key(path, sep)] = empty_node
      else:
        flat[_key(path, sep)] = value

  visit(xs, ())
  return flat


def _key(path: Path, sep: str | None):
  return path if sep is None else sep.join(str(k) for k in path)


def unflatten_dict(xs: Mapping, sep: str | None = None) -> dict:
  """Rebuild the nested dict that :func:`flatten_dict` flattened.

  Args:
    xs: a flat mapping from path tuples (or ``sep``-joined strings) to leaves.
    sep: the separator the string keys were joined with.

  Returns:
    The nested dict; a value :data:`empty_node` becomes an empty dict.

  Raises:
    NotAMappingError: ``xs`` is not a mapping.
    FlatKeyError: a key is not a non-empty tuple (``sep=None``) or string (``sep`` given).
    PathConflictError: a path is both a leaf and the prefix of another path.
  """
  if not isinstance(xs, Mapping):
    raise NotAMappingError("unflatten_dict", xs, "pass the flat dict that flatten_dict returned")
  nested: dict = {}
  for key, value in xs.items():
    path = _path(key, sep)
    node = nested
    for depth, part in enumerate(path[:-1]):
      child = node.setdefault(part, {})
      if not isinstance(child, dict):
        raise PathConflictError(path[: depth + 1], path)
      node = child
    if value is empty_node:
      node.setdefault(path[-1], {})
    elif isinstance(child := node.get(path[-1]), dict):  # name one path below the leaf
      below = next(iter(flatten_dict(child, keep_empty_nodes=True)), ())
      raise PathConflictError(path, (*path, *below))
    else:
      node[path[-1]] = value
  return nested


def _path(key: Any, sep: str | None) -> Path:
  """The tuple path of a flat key."""
  if sep is None and isinstance(key, tuple) and key:
    return key
  if sep is not None and isinstance(key, str):
    return tuple(key.split(sep))
  raise FlatKeyError(key, sep)


def path_aware_map(f: Callable[[Path, Any], Any], nested_dict: Mapping) -> dict:
  """Map ``f(path, leaf)`` over the leaves of a nested mapping, keeping its structure.

  >>> path_aware_map(lambda path, x: x * 10 if path[-1] == "kernel" else x,
  ...                {"Dense_0": {"kernel": 1, "bias": 2}})
  {'Dense_0': {'kernel': 10, 'bias': 2}}
  """
  flat = flatten_dict(nested_dict, keep_empty_nodes=True)
  return unflatten_dict(
    {path: value if value is empty_node else f(path, value) for path, value in flat.items()}
  )


# Flax's deprecated Traversal objects (one module of their own).
from flaxen.traversal import *  # noqa: E402, F403
