"""How a pytree is laid out in a checkpoint, and how leaves are matched up by path names.

orbax stores any JAX pytree (dicts, lists, struct dataclasses, optax states, nnx.State...)
as nested dicts and lists: dict keys and attribute names become dict keys, sequence
indices list positions, and empty nodes ``None``. flaxen saves trees exactly as orbax
does, so checkpoints move between flaxen and plain orbax both ways. To compare and
restore, both the target and the stored tree are flattened to their leaves keyed by
*path names*, the string form of each key on the path (``('opt_state', '0', 'mu')``);
restoring pours the stored leaves back into the target's own structure, leaf by leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def map_stored(fn: Callable[[Names, Any], Any], tree: Any, prefix: Names = ()) -> Any:
  """A stored tree (nested dicts, lists, ``None``) of the same shape, leaves ``fn(names, leaf)``.

  ``None`` is an empty node (orbax writes one for e.g. ``optax.EmptyState()``).
  """
  if tree is None:
    return None
  if isinstance(tree, Mapping):
    return {k: map_stored(fn, sub, (*prefix, str(k))) for k, sub in tree.items()}
  if isinstance(tree, list | tuple):
    subs = [map_stored(fn, sub, (*prefix, str(i))) for i, sub in enumerate(tree)]
    return subs if isinstance(tree, list) else tuple(subs)
  return fn(prefix, tree)


def flatten_stored(tree: Any) -> dict[Names, Any]:
  """Leaves of a stored tree keyed by their path names."""
  flat: dict[Names, Any] = {}
  map_stored(flat.__setitem__, tree)
  return flat


def check_savable(tree: Any, path: str) -> None:
  """Raise unless orbax can store every leaf of ``tree`` under a name of its own."""
  flat = flatten(tree)
  if not flat:
    raise errors.EmptyCheckpointError(path)
  # orbax names each leaf's storage by its names joined with '.', and nests containers by
  # name: neither may bring two leaves, or a leaf and a subtree, together.
  joined: dict[str, Names] = {}
  prefixes = {names[:i] for names in flat for i in range(1, len(names))}
  for names, leaf in flat.items():
    other = joined.setdefault(".".join(names), names)
    if other != names:
      raise errors.CheckpointKeyCollisionError(path_str(names), path_str(other))
    if names in prefixes:
      raise errors.CheckpointKeyCollisionError(path_str(names))
    if not (isinstance(leaf, jax.Array | np.ndarray | np.generic) or is_python_scalar(leaf)):
      raise errors.UnsupportedCheckpointLeafError(
        path_str(names), leaf, "jax or numpy arrays and bool/int/float scalars"
      )
    if np.size(leaf) == 0:  # orbax cannot store an array without elements
      raise errors.UnsupportedCheckpointLeafError(
        path_str(names), leaf, "arrays with at least one element and bool/int/float scalars"
      )
