"""Saving one pytree to a directory and restoring it, checked against the stored metadata."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from flaxen import errors
from flaxen.checkpoint import layout, quiet, validate

PathLike = str | os.PathLike[str]

# orbax writes into '<name><marker><timestamp>' and renames it to '<name>' on commit.
TMP_MARKER = ".orbax-checkpoint-tmp"


def absolute(path: PathLike) -> Path:
  """``path`` as an absolute path (orbax accepts no relative ones)."""
  return Path(path).expanduser().absolute()


def save(path: PathLike, tree: Any, *, force: bool = False) -> None:
  """Save a pytree of arrays and scalars to the directory ``path``.

  The write is atomic: orbax writes into a temporary directory and renames it to ``path``
  once complete, so a process killed mid-save leaves no checkpoint at ``path`` and every
  earlier checkpoint intact.

  Args:
    path: the checkpoint directory, ``str`` or ``pathlib.Path``; relative paths are taken
      from the current directory.
    tree: any JAX pytree (Linen variables, ``nnx.State``, optax states, struct dataclasses)
      whose leaves are jax or numpy arrays or Python ``bool``/``int``/``float``.
    force: replace an existing checkpoint at ``path``. The new one is written beside it
      and swapped in by two renames once complete.

  Raises:
    AlreadyExistsError (a CheckpointExistsError): ``path`` exists and ``force`` is False.
    UnsupportedCheckpointLeafError: a leaf is not an array or scalar, or has no elements.
    EmptyCheckpointError: the tree has no leaves.
    CheckpointKeyCollisionError: two leaves would be stored under one name.

  >>> import tempfile, numpy as np
  >>> from flaxen import checkpoint
  >>> path = tempfile.mkdtemp() + "/ckpt"
  >>> checkpoint.save(path, {"params": {"w": np.ones((2,), np.float32)}})
  >>> checkpoint.restore(path)
  {'params': {'w': array([1., 1.], dtype=float32)}}
  """
  path = absolute(path)
  layout.check_savable(tree, str(path))
  if not path.exists():
    _write(path, tree)
  elif not force:
    raise errors.AlreadyExistsError(str(path))
  else:
    # orbax's own force=True deletes the old checkpoint first; a crash would lose both.
    new = path.with_name(f"{path.name}{TMP_MARKER}-new-{os.getpid()}")
    old = path.with_name(f"{path.name}{TMP_MARKER}-old-{os.getpid()}")
    _write(new, tree)
    path.rename(old)
    new.rename(path)
    shutil.rmtree(old)


def _write(path: Path, tree: Any) -> None:
  with quiet.orbax_logs(), ocp.Checkpointer(ocp.StandardCheckpointHandler()) as ckptr:
    # force: only ever replaces the leftover of a crashed save in this process's name.
    ckptr.save(path, args=ocp.args.StandardSave(tree), force=True)


def restore(path: PathLike, target: Any = None) -> Any:
  """Restore the checkpoint at ``path``, into the structure of ``target`` if given.

  The target's tree, shapes and dtypes are checked against the checkpoint's metadata
  before any array is read. Leaves of the target may be arrays or ``jax.ShapeDtypeStruct``
  (e.g. from ``jax.eval_shape`` / ``nnx.eval_shape``): jax leaves restore as jax arrays
  with the target's sharding, numpy leaves as numpy arrays, scalars as scalars.

  Args:
    path: the checkpoint directory, ``str`` or ``pathlib.Path``.
    target: a pytree of the saved structure, or None to get the tree as orbax stores
      it: dicts (for dicts, dataclasses, namedtuples), lists (for sequences) and None
      (for empty nodes), with saved jax arrays on the default device and saved numpy
      arrays as numpy.

  Returns:
    The restored tree: ``target``'s structure with the stored values.

  Raises:
    CheckpointNotFoundError: no checkpoint directory at ``path``.
    CheckpointMismatchError: the target's tree, a shape or a dtype differs; names the
      first differing path.
    CheckpointCorruptedError: the checkpoint's files are missing or damaged. Nothing is
      restored partially.

  >>> import tempfile, jax, numpy as np
  >>> from flaxen import checkpoint
  >>> path = tempfile.mkdtemp() + "/ckpt"
  >>> checkpoint.save(path, {"w": np.arange(3, dtype=np.float32), "step": 7})
  >>> abstract = {"w": jax.ShapeDtypeStruct((3,), np.float32), "step": 0}
  >>> checkpoint.restore(path, abstract)
  {'step': 7, 'w': Array([0., 1., 2.], dtype=float32)}
  """
  return restore_directory(absolute(path), target)


def restore_directory(path: Path, target: Any) -> Any:
  """:func:`restore` for an absolute path."""
  if TMP_MARKER in path.name:
    raise errors.CheckpointCorruptedError(str(path), "an uncommitted (temporary) directory")
  if not path.is_dir():
    raise errors.CheckpointNotFoundError(str(path))
  with quiet.orbax_logs():
    try:
      metadata = ocp.StandardCheckpointHandler().metadata(epath.Path(path))
      stored = layout.flatten_stored(metadata.tree)
    except Exception as e:
      raise errors.CheckpointCorruptedError(str(path), e) from e
    if target is None:
      flat = {names: _stored_as_target(meta) for names, meta in stored.items()}
    else:
      flat = layout.flatten(target)
      validate.check(str(path), flat, stored)
    # The template has the stored containers, which orbax requires, with the target's leaves.
    template = layout.map_stored(lambda names, meta: _template(flat[names], meta), metadata.tree)
    values = layout.flatten_stored(_load(path, template))
  if target is None:
    return layout.map_stored(lambda names, _: _convert(flat[names], values[names]), metadata.tree)
  leaves = [_convert(leaf, values[names]) for names, leaf in flat.items()]
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(target), leaves)


def _stored_as_target(meta: Any) -> Any:
  """The target leaf ``restore(path)`` uses: saved jax arrays go to the default device.

  Not to the saved sharding, which may name devices this process does not have.
  """
  if isinstance(meta, ocp.metadata.ScalarMetadata):
    return np.zeros((), meta.dtype).item()
  if meta.sharding is None:  # saved from numpy; only the type and dtype of this leaf matter
    return np.zeros((), meta.dtype)
  device = jax.sharding.make_single_device_sharding(jax.devices()[0])
  return jax.ShapeDtypeStruct(meta.shape, meta.dtype, sharding=device)


def _load(path: Path, item: Any) -> Any:
  try:
    with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as ckptr:
      return ckptr.restore(path, args=ocp.args.StandardRestore(item))
  except Exception as e:
    raise errors.CheckpointCorruptedError(str(path), e) from e


def _template(leaf: Any, meta: Any) -> Any:
  """What orbax restores for one leaf: the stored dtype, placed as the target wants."""
  if isinstance(meta, ocp.metadata.ScalarMetadata):
    return np.zeros((), meta.dtype).item()
  if isinstance(leaf, jax.Array | jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct(meta.shape, meta.dtype, sharding=leaf.sharding)
  return np.empty(meta.shape, meta.dtype)


def _convert(leaf: Any, value: Any) -> Any:
  """The restored ``value`` with the target leaf's type and dtype."""
  if layout.is_python_scalar(leaf):
    return type(leaf)(np.asarray(value).item())
  if isinstance(leaf, np.generic):
    return np.asarray(value, leaf.dtype)[()]
  if isinstance(leaf, np.ndarray):
    return np.asarray(value, leaf.dtype)
  if not isinstance(value, jax.Array):
    return jax.device_put(np.asarray(value, leaf.dtype), leaf.sharding)
  return value if value.dtype == leaf.dtype else value.astype(leaf.dtype)
