"""How a pytree is laid out in a checkpoint: nested dicts keyed by the names of its paths.

Every JAX pytree (dicts, lists, struct dataclasses, optax states, nnx.State...) is
flattened with its key paths, and each leaf is stored under the string names of its path:
dict keys, attribute names and sequence indices. The checkpoint thus never depends on the
Python classes that built the tree, and restoring pours the stored leaves back into the
target's own structure, leaf by leaf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from flaxen import errors

Names = tuple[str, ...]


def is_python_scalar(leaf: Any) -> bool:
  return isinstance(leaf, bool | int | float)


def path_str(names: Names) -> str:
  """``('params', 'Dense_0', 'kernel')`` -> ``'params/Dense_0/kernel'``."""
  return "/".join(names) or "<root>"


def _key_name(key: Any) -> str:
  if isinstance(key, jax.tree_util.DictKey | jax.tree_util.FlattenedIndexKey):
    return str(key.key)
  if isinstance(key, jax.tree_util.GetAttrKey):
    return key.name
  if isinstance(key, jax.tree_util.SequenceKey):
    return str(key.idx)
  return str(key)


def flatten(tree: Any) -> dict[Names, Any]:
  """The leaves of ``tree`` keyed by their path names, in JAX's flattening order."""
  flat: dict[Names, Any] = {}
  for keypath, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    names = tuple(_key_name(k) for k in keypath)
    if names in flat:
      raise errors.CheckpointKeyCollisionError(path_str(names))
    flat[names] = leaf
  return flat


def nest(flat: Mapping[Names, Any]) -> dict[str, Any]:
  """Nested dicts from path names -> leaf; the inverse of :func:`flatten_stored`."""
  root: dict[str, Any] = {}
  for names, leaf in flat.items():
    node = root
    for i, name in enumerate(names[:-1]):
      node = node.setdefault(name, {})
      if not isinstance(node, dict):
        raise errors.CheckpointKeyCollisionError(path_str(names[: i + 1]))
    if names[-1] in node:
      raise errors.CheckpointKeyCollisionError(path_str(names))
    node[names[-1]] = leaf
  return root


def flatten_stored(tree: Any, prefix: Names = ()) -> dict[Names, Any]:
  """Leaves of a stored tree (nested dicts, maybe lists) keyed by their path names."""
  if isinstance(tree, Mapping):
    items: Sequence[tuple[Any, Any]] = list(tree.items())
  elif isinstance(tree, list | tuple):
    items = list(enumerate(tree))
  else:
    return {prefix: tree}
  flat: dict[Names, Any] = {}
  for key, sub in items:
    flat.update(flatten_stored(sub, (*prefix, str(key))))
  return flat


def to_stored(tree: Any, path: str) -> dict[str, Any]:
  """The nested dict that is saved for ``tree``, after checking every leaf can be saved."""
  flat = flatten(tree)
  if not flat:
    raise errors.EmptyCheckpointError(path)
  storage_names: dict[str, Names] = {}
  for names, leaf in flat.items():
    # orbax stores each leaf under its names joined with '.': keep them apart.
    other = storage_names.setdefault(".".join(names), names)
    if other != names:
      raise errors.CheckpointKeyCollisionError(path_str(names), path_str(other))
    if isinstance(leaf, np.generic):
      flat[names] = np.asarray(leaf)
    elif not (isinstance(leaf, jax.Array | np.ndarray) or is_python_scalar(leaf)):
      raise errors.UnsupportedCheckpointLeafError(
        path_str(names), leaf, "jax or numpy arrays and bool/int/float scalars"
      )
  return nest(flat)
