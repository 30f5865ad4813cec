"""The msgpack (legacy) backend of ``flaxen.training.checkpoints``: one file per step.

A save writes ``<prefix>tmp`` and renames it to ``<prefix><step>`` (atomic on one file
system); a restore decodes the file with :func:`flaxen.serialization.msgpack_restore`.
"""

from __future__ import annotations

import os
from typing import Any

import jax

from flaxen import errors, serialization
from flaxen.training.checkpoint_files import MP_ARRAY_POSTFIX, listed, natural_sort, prune

# Flax's msgpack checkpoints put a multi-process array in a separate directory and this
# placeholder string (plus the array's path) in its place.
MP_ARRAY_PH = "//GDAPlaceholder:"
COMMIT_FILE = "commit_success.txt"  # written last into <path>_gda by a finished save


def save(target, step, pruning, async_manager, multiprocess: bool) -> None:
  """Writes ``target`` as ``pruning[0]`` (now, or in ``async_manager``), then prunes.

  ``pruning`` holds :func:`checkpoint_files.prune`'s arguments: (checkpoint path,
  directory, prefix, keep, overwrite, keep_every_n_steps).
  """
  ckpt_path, ckpt_dir, prefix, _, overwrite, _ = pruning
  if not overwrite:
    paths = listed(ckpt_dir, prefix)
    if ckpt_path in paths or natural_sort([*paths, ckpt_path])[-1] != ckpt_path:
      raise errors.InvalidCheckpointError(ckpt_path, step)
  state = serialization.to_state_dict(target)
  if any(isinstance(x, jax.Array) and not x.is_fully_addressable
         for x in jax.tree_util.tree_leaves(state)):
    raise errors.MPACheckpointingRequiredError(ckpt_path, step)
  data = serialization.msgpack_serialize(state)
  tmp_path = os.path.join(ckpt_dir, f"{prefix}tmp")

  def write() -> None:
    os.makedirs(ckpt_dir, exist_ok=True)
    with open(tmp_path, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp_path, ckpt_path)  # atomic: the name holds the old file or the new one
    prune(*pruning)

  if multiprocess and jax.process_index() != 0:
    return
  if async_manager is not None:
    async_manager.save_async(write)
  else:
    write()


def restore(ckpt_path: str, target: Any, step: Any, allow_partial: bool) -> Any:
  """The msgpack file at ``ckpt_path``, into ``target`` (or as a state dict if None)."""
  with open(ckpt_path, "rb") as f:
    data = f.read()
  try:
    state = serialization.msgpack_restore(data)
  except Exception as e:  # any decoding failure means damaged bytes
    raise errors.CheckpointCorruptedError(ckpt_path, e) from e
  placeholders = [x for x in jax.tree_util.tree_leaves(state)
                  if isinstance(x, str) and x.startswith(MP_ARRAY_PH)]
  if placeholders and not allow_partial:
    gda_dir = ckpt_path + MP_ARRAY_POSTFIX
    if os.path.isdir(gda_dir) and not os.path.exists(os.path.join(gda_dir, COMMIT_FILE)):
      raise errors.MPARestoreDataCorruptedError(step, ckpt_path)
    if target is None:
      key = placeholders[0][len(MP_ARRAY_PH):]
      raise errors.MPARestoreTargetRequiredError(ckpt_path, step, key)
    raise errors.MPACheckpointingRequiredError(ckpt_path, step)
  return state if target is None else serialization.from_state_dict(target, state)
