"""The Orbax backend of ``flaxen.training.checkpoints``: one checkpoint directory.

Saving and restoring go through :mod:`flaxen.checkpoint` (atomic, checked against the
stored metadata); where Flax's behaviour needs Orbax's own PyTree handler (string leaves, a
user's checkpointer or transforms) it is called directly, as Flax calls it.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from flaxen import checkpoint, errors, serialization
from flaxen.checkpoint import layout, quiet
from flaxen.checkpoint.save_restore import TMP_MARKER

# Files whose presence marks a directory as an Orbax checkpoint (older and newer layouts).
ORBAX_CKPT_FILENAME = "checkpoint"
ORBAX_MANIFEST_OCDBT = "manifest.ocdbt"
ORBAX_METADATA_FILENAME = "_METADATA"


def is_orbax(path: str) -> bool:
  """Whether ``path`` is an Orbax checkpoint directory."""
  names = (ORBAX_CKPT_FILENAME, ORBAX_METADATA_FILENAME, ORBAX_MANIFEST_OCDBT)
  return any(os.path.exists(os.path.join(path, name)) for name in names)


def save(ckpt_path: str, target: Any, overwrite: bool, checkpointer) -> None:
  """Saves ``target`` at ``ckpt_path`` (replacing it if ``overwrite``), with
  ``checkpointer`` when given."""
  if isinstance(checkpointer, ocp.AsyncCheckpointer):
    checkpointer.wait_until_finished()
  handler = getattr(checkpointer, "_handler", None)
  if (jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(target))
      and not isinstance(handler, ocp.ArrayCheckpointHandler)):
    raise errors.SingleLeafCheckpointError(ckpt_path, target)
  os.makedirs(os.path.dirname(ckpt_path), exist_ok=True)
  if checkpointer is not None:
    checkpointer.save(ckpt_path, target, force=overwrite)
  elif any(isinstance(x, str) for x in jax.tree_util.tree_leaves(target)):
    _save_with_strings(ckpt_path, target)
  else:
    checkpoint.save(ckpt_path, target, force=overwrite)


def _save_with_strings(ckpt_path: str, target: Any) -> None:
  """Orbax's own PyTree handler, as Flax saves, for trees with string leaves (which
  flaxen.checkpoint does not store); an existing checkpoint is replaced atomically."""
  final = os.path.abspath(ckpt_path)
  new = f"{final}{TMP_MARKER}-new-{os.getpid()}" if os.path.exists(final) else final
  with ocp.Checkpointer(ocp.PyTreeCheckpointHandler()) as ckptr:
    ckptr.save(new, target, force=True)  # force: only a leftover of this process's name
  if new != final:
    old = f"{final}{TMP_MARKER}-old-{os.getpid()}"
    os.rename(final, old)
    os.rename(new, final)
    shutil.rmtree(old)


def _has_strings(ckpt_path: str, target: Any) -> bool:
  """Whether the target or the checkpoint has string leaves (flaxen.checkpoint has none)."""
  if target is not None:
    return any(isinstance(x, str) for x in jax.tree_util.tree_leaves(target))
  try:
    with quiet.orbax_logs():
      stored = ocp.PyTreeCheckpointHandler().metadata(epath.Path(ckpt_path)).tree
  except Exception as e:  # unreadable metadata: a damaged checkpoint
    raise errors.CheckpointCorruptedError(ckpt_path, e) from e
  return any(isinstance(m, ocp.metadata.StringMetadata)
             for m in jax.tree_util.tree_leaves(stored))


def _is_array(x: Any) -> bool:
  return isinstance(x, jax.Array | jax.ShapeDtypeStruct | np.ndarray | np.generic)


def _with_stored_dtypes(ckpt_path: str, target: Any) -> Any:
  """``target`` with each array leaf's dtype replaced by the stored one, where they differ.

  Flax restores through Orbax, which casts a stored array to the target's dtype (float32
  weights into a bfloat16 model); flaxen.checkpoint checks dtypes, so the restore reads the
  stored dtype and the caller casts. Shapes must still match.
  """
  try:
    with quiet.orbax_logs():
      meta = ocp.StandardCheckpointHandler().metadata(epath.Path(ckpt_path)).tree
  except Exception as e:  # unreadable metadata: a damaged checkpoint
    raise errors.CheckpointCorruptedError(ckpt_path, e) from e
  stored = layout.flatten_stored(meta)
  flat = layout.flatten(target)
  leaves, changed = [], False
  for names, leaf in flat.items():
    found = stored.get(names)
    dtype = getattr(found, "dtype", None)
    if (_is_array(leaf) and dtype is not None and np.dtype(dtype) != np.dtype(leaf.dtype)
        and tuple(getattr(found, "shape", ())) == tuple(leaf.shape)):
      leaf = (np.empty(leaf.shape, dtype) if isinstance(leaf, np.ndarray | np.generic)
              else jax.ShapeDtypeStruct(leaf.shape, dtype, sharding=leaf.sharding))
      changed = True
    leaves.append(leaf)
  if not changed:
    return target
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(target), leaves)


def restore(ckpt_path: str, target: Any, checkpointer, transforms) -> Any:
  """The checkpoint at ``ckpt_path``: ``target``'s structure, or the state dict if None."""
  if checkpointer is not None or transforms is not None:
    return _restore_with_orbax(ckpt_path, target, checkpointer, transforms)
  try:
    if _has_strings(ckpt_path, target):
      return _restore_with_orbax(ckpt_path, target, None, None)
    return _restore_checked(ckpt_path, target)
  except errors.CheckpointCorruptedError as e:
    # A layout flaxen.checkpoint does not read (older Orbax versions) may still be one
    # Orbax reads, as it would under Flax; if Orbax fails too, the checkpoint is damaged.
    try:
      with quiet.orbax_logs():
        return _restore_with_orbax(ckpt_path, target, None, None)
    except Exception:
      raise e from None


def _restore_checked(ckpt_path: str, target: Any) -> Any:
  """Through flaxen.checkpoint: the target checked first, dtypes cast as Orbax casts them."""
  if target is None:
    return serialization.to_state_dict(checkpoint.restore(ckpt_path))
  as_stored = _with_stored_dtypes(ckpt_path, target)
  restored = checkpoint.restore(ckpt_path, as_stored)
  if as_stored is target:
    return restored
  return jax.tree_util.tree_map(
    lambda r, t: r.astype(t.dtype) if _is_array(t) else r, restored, target)


def _restore_with_orbax(ckpt_path: str, target: Any, checkpointer, transforms) -> Any:
  """Orbax's own restore, as Flax calls it."""
  kwargs: dict[str, Any] = {}
  if target is not None:
    kwargs["restore_args"] = ocp.checkpoint_utils.construct_restore_args(target)
  if transforms is not None:
    kwargs["transforms"] = transforms
  if checkpointer is not None:
    restored = checkpointer.restore(ckpt_path, item=target, **kwargs)
  else:
    with ocp.Checkpointer(ocp.PyTreeCheckpointHandler()) as own:
      restored = own.restore(ckpt_path, item=target, **kwargs)
  restored = serialization.to_state_dict(restored)
  return restored if target is None else serialization.from_state_dict(target, restored)
