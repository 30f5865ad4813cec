"""Flax's step-numbered checkpoints: ``save_checkpoint`` / ``restore_checkpoint`` & co.

Each save writes ``<ckpt_dir>/<prefix><step>`` and then prunes the directory (``keep``,
``keep_every_n_steps``, and with ``overwrite`` the steps after the new one). By default
checkpoints are Orbax directories written through :mod:`flaxen.checkpoint` (atomic, and
checked against the target on restore); with
``flaxen.config.update('flax_use_orbax_checkpointing', False)`` they are the legacy
msgpack files (deprecated, as in Flax), written to ``<prefix>tmp`` and renamed. Restore
reads either kind, whichever the path holds, including checkpoints Flax wrote.

>>> import tempfile, jax.numpy as jnp
>>> from flaxen.training import checkpoints
>>> ckpt_dir = tempfile.mkdtemp()
>>> for step in range(3):
...   path = checkpoints.save_checkpoint(ckpt_dir, {"w": jnp.full(2, step, jnp.float32)}, step,
...                                      keep=2)
>>> checkpoints.available_steps(ckpt_dir)
[1, 2]
>>> checkpoints.restore_checkpoint(ckpt_dir, target=None)
{'w': Array([2., 2.], dtype=float32)}
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from flaxen import checkpoint, core, errors, serialization
from flaxen.checkpoint import layout, quiet
from flaxen.checkpoint.save_restore import TMP_MARKER
from flaxen.configurations import config
from flaxen.training.checkpoint_files import (
  MODULE_NUM_RE,
  MP_ARRAY_POSTFIX,
  SCHEME_RE,
  SIGNED_FLOAT_RE,
  UNSIGNED_FLOAT_RE,
  listed,
  natural_sort,
  prune,
  safe_normpath,
)

__all__ = [
  "AsyncManager", "COMMIT_SUCCESS_FILE", "MODULE_NUM_RE", "MP_ARRAY_PH", "MP_ARRAY_POSTFIX",
  "ORBAX_CKPT_FILENAME", "ORBAX_MANIFEST_OCDBT", "ORBAX_METADATA_FILENAME", "SCHEME_RE",
  "SIGNED_FLOAT_RE", "UNSIGNED_FLOAT_RE", "available_steps", "convert_pre_linen",
  "latest_checkpoint", "natural_sort", "restore_checkpoint", "safe_normpath",
  "save_checkpoint", "save_checkpoint_multiprocess",
]

_log = logging.getLogger(__name__)

# Flax's msgpack checkpoints put a multi-process array in a separate directory and this
# placeholder string (plus the array's path) in its place.
MP_ARRAY_PH = "//GDAPlaceholder:"
COMMIT_SUCCESS_FILE = "commit_success.txt"
# Files whose presence marks a directory as an Orbax checkpoint (older and newer layouts).
ORBAX_CKPT_FILENAME = "checkpoint"
ORBAX_MANIFEST_OCDBT = "manifest.ocdbt"
ORBAX_METADATA_FILENAME = "_METADATA"

PyTree = Any


class AsyncManager:
  """Runs msgpack checkpoint saves in a background thread, one at a time.

  Pass it as ``save_checkpoint(..., async_manager=am)``; a save waits for the previous
  one, and :meth:`wait_previous_save` waits for the last.

  Args:
    max_workers: threads of the executor.
  """

  def __init__(self, max_workers: int = 1):
    self.executor = ThreadPoolExecutor(max_workers=max_workers)
    self.save_future: Future | None = None

  def wait_previous_save(self) -> None:
    """Blocks until the previous save has finished; re-raises its error, if any."""
    if self.save_future is not None:
      self.save_future.result()

  def save_async(self, task: Callable[[], Any]) -> None:
    """Runs ``task`` in the background once the previous save has finished."""
    self.wait_previous_save()
    self.save_future = self.executor.submit(task)


def _is_orbax(path: str) -> bool:
  names = (ORBAX_CKPT_FILENAME, ORBAX_METADATA_FILENAME, ORBAX_MANIFEST_OCDBT)
  return any(os.path.exists(os.path.join(path, name)) for name in names)


def save_checkpoint(
  ckpt_dir: str | os.PathLike, target: PyTree, step: int | float,
  prefix: str = "checkpoint_", keep: int = 1, overwrite: bool = False,
  keep_every_n_steps: int | None = None, async_manager: AsyncManager | None = None,
  orbax_checkpointer: ocp.Checkpointer | None = None,
) -> str:
  """Saves ``target`` as ``<ckpt_dir>/<prefix><step>``, then prunes older checkpoints.

  For one process saving on its own; with several processes writing one checkpoint, use
  :func:`save_checkpoint_multiprocess`. The save is atomic: a process killed mid-save
  leaves the previous checkpoints intact and no partial one under the final name.

  Args:
    ckpt_dir: the directory of the checkpoints (created if missing).
    target: the pytree to save (a train state, a params dict, ...).
    step: the training step (or another number) naming the checkpoint.
    prefix: the name of each checkpoint before its step.
    keep: how many of the latest checkpoints to keep.
    overwrite: replace a checkpoint of this step, and remove those of later steps.
    keep_every_n_steps: also keep old checkpoints at least this many steps apart.
    async_manager: (msgpack) write in the background; later saves wait for it.
    orbax_checkpointer: save with this Orbax checkpointer instead of flaxen's.

  Returns:
    The path of the checkpoint.

  Raises:
    InvalidCheckpointError: a checkpoint of ``step`` exists (msgpack: or of a later step)
      and ``overwrite`` is False.
    SingleLeafCheckpointError: (Orbax) ``target`` is a single array or number.
  """
  return _save(ckpt_dir, target, step, prefix, keep, overwrite, keep_every_n_steps,
               async_manager, orbax_checkpointer, multiprocess=False)


def save_checkpoint_multiprocess(
  ckpt_dir: str | os.PathLike, target: PyTree, step: int | float,
  prefix: str = "checkpoint_", keep: int = 1, overwrite: bool = False,
  keep_every_n_steps: int | None = None, async_manager: AsyncManager | None = None,
  gda_manager: Any | None = None, orbax_checkpointer: ocp.Checkpointer | None = None,
) -> str:
  """:func:`save_checkpoint` for every process of a multi-process job at once.

  Every process calls it. With Orbax (the default) each process writes its own shards of
  the arrays; only process 0 prunes. msgpack checkpoints are written by process 0 alone
  and cannot hold arrays that span processes.

  Args:
    ckpt_dir, target, step, prefix, keep, overwrite, keep_every_n_steps, async_manager,
      orbax_checkpointer: as for :func:`save_checkpoint`.
    gda_manager: accepted for Flax's signature; Orbax saves multi-process arrays itself.

  Returns:
    The path of the checkpoint.

  Raises:
    MPACheckpointingRequiredError: (msgpack) ``target`` holds arrays spanning processes.
  """
  del gda_manager  # Orbax writes multi-process arrays; msgpack refuses them
  return _save(ckpt_dir, target, step, prefix, keep, overwrite, keep_every_n_steps,
               async_manager, orbax_checkpointer, multiprocess=True)


def _save(ckpt_dir, target, step, prefix, keep, overwrite, keep_every_n_steps,
          async_manager, orbax_checkpointer, *, multiprocess: bool) -> str:
  if async_manager is not None:
    async_manager.wait_previous_save()
  ckpt_dir = safe_normpath(os.fspath(ckpt_dir))
  ckpt_path = os.path.join(ckpt_dir, f"{prefix}{step}")
  pruning = (ckpt_path, ckpt_dir, prefix, keep, overwrite, keep_every_n_steps)
  if not (config.flax_use_orbax_checkpointing or orbax_checkpointer is not None):
    warnings.warn(
      "msgpack checkpoints (flax_use_orbax_checkpointing=False) are deprecated, as in Flax: "
      "leave the flag at its default to save with Orbax.", DeprecationWarning, stacklevel=3)
    _save_msgpack(target, step, pruning, async_manager, multiprocess)
    return ckpt_path
  if os.path.exists(ckpt_path) and not overwrite:
    raise errors.InvalidCheckpointError(ckpt_path, step)
  if not multiprocess and jax.process_count() > 1:
    _log.warning("save_checkpoint called in a job of %d processes: every process must call "
                 "it (or use save_checkpoint_multiprocess), or the devices hang.",
                 jax.process_count())
  if multiprocess and jax.process_index() == 0:
    prune(*pruning)  # before the save, as Flax does: the others are writing meanwhile
  _save_orbax(ckpt_path, target, overwrite, orbax_checkpointer)
  if not multiprocess and jax.process_index() == 0:
    prune(*pruning)
  return ckpt_path


def _save_orbax(ckpt_path: str, target: PyTree, overwrite: bool, checkpointer) -> None:
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


def _save_with_strings(ckpt_path: str, target: PyTree) -> None:
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


def _save_msgpack(target, step, pruning, async_manager, multiprocess: bool) -> None:
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


def latest_checkpoint(ckpt_dir: str | os.PathLike, prefix: str = "checkpoint_") -> str | None:
  """The path of the checkpoint with the largest step in ``ckpt_dir``, or None."""
  paths = listed(os.fspath(ckpt_dir), prefix)
  return paths[-1] if paths else None


def available_steps(ckpt_dir: str | os.PathLike, prefix: str = "checkpoint_",
                    step_type: type = int) -> list[int | float]:
  """The steps of the checkpoints in ``ckpt_dir``, in increasing order.

  Args:
    ckpt_dir: the directory of the checkpoints.
    prefix: the name of each checkpoint before its step.
    step_type: ``int`` or ``float``, applied to each name's step text.
  """
  return [step_type(os.path.basename(p)[len(prefix):])
          for p in listed(os.fspath(ckpt_dir), prefix)]


def restore_checkpoint(
  ckpt_dir: str | os.PathLike, target: Any | None, step: int | float | None = None,
  prefix: str = "checkpoint_", parallel: bool = True, gda_manager: Any | None = None,
  allow_partial_mpa_restoration: bool = False,
  orbax_checkpointer: ocp.Checkpointer | None = None, orbax_transforms: dict | None = None,
) -> PyTree:
  """Restores the latest checkpoint in ``ckpt_dir`` (or ``step``), Orbax or msgpack.

  ``ckpt_dir`` may also be one checkpoint (an Orbax directory or a msgpack file). When no
  ``step`` is asked for and there is no checkpoint (or no directory) yet, ``target`` is
  returned unchanged, so a training loop can restore before its first save.

  Args:
    ckpt_dir: the directory of the checkpoints, or one checkpoint.
    target: a tree of the saved structure to restore into, or None for the state dict
      (nested dicts with string keys) as saved.
    step: the step to restore; None for the latest.
    prefix: the name of each checkpoint before its step.
    parallel: accepted for Flax's signature (a file is read in one go).
    gda_manager: accepted for Flax's signature (Orbax restores multi-process arrays).
    allow_partial_mpa_restoration: restore a msgpack checkpoint written by Flax with
      multi-process arrays, leaving their placeholders in place.
    orbax_checkpointer: restore with this Orbax checkpointer instead of flaxen's.
    orbax_transforms: Orbax transformations, passed to Orbax's restore.

  Returns:
    The restored tree (``target``'s structure when given), or ``target`` when there is
    nothing to restore.

  Raises:
    CheckpointStepNotFoundError: no checkpoint of ``step``.
    CheckpointCorruptedError: the checkpoint's files are damaged or incomplete.
    CheckpointMismatchError: (Orbax) the target's structure, a shape or a dtype differs.
    StateMismatchError: (msgpack) the target's structure differs.
  """
  del parallel, gda_manager
  if isinstance(orbax_checkpointer, ocp.AsyncCheckpointer):
    orbax_checkpointer.wait_until_finished()
  ckpt_dir = safe_normpath(os.fspath(ckpt_dir))
  if step is not None:
    ckpt_path = os.path.join(ckpt_dir, f"{prefix}{step}")
    if not os.path.exists(ckpt_path):
      found = [os.path.basename(p)[len(prefix):] for p in listed(ckpt_dir, prefix)]
      raise errors.CheckpointStepNotFoundError(ckpt_path, found)
  elif not os.path.exists(ckpt_dir):
    _log.info("No checkpoint directory at %s", ckpt_dir)
    return target
  elif os.path.isdir(ckpt_dir) and not _is_orbax(ckpt_dir):
    ckpt_path = latest_checkpoint(ckpt_dir, prefix)
    if ckpt_path is None:
      _log.info("No checkpoints named %s* in %s", prefix, ckpt_dir)
      return target
  else:
    ckpt_path = ckpt_dir
  if _is_orbax(ckpt_path):
    return _restore_orbax(ckpt_path, target, orbax_checkpointer, orbax_transforms)
  if os.path.isdir(ckpt_path):
    raise errors.CheckpointCorruptedError(ckpt_path, "a directory without Orbax's metadata")
  return _restore_msgpack(ckpt_path, target, step, allow_partial_mpa_restoration)


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


def _restore_orbax(ckpt_path: str, target: Any, checkpointer, transforms) -> PyTree:
  if checkpointer is None and transforms is None and not _has_strings(ckpt_path, target):
    if target is None:
      return serialization.to_state_dict(checkpoint.restore(ckpt_path))
    as_stored = _with_stored_dtypes(ckpt_path, target)
    restored = checkpoint.restore(ckpt_path, as_stored)
    if as_stored is target:
      return restored
    return jax.tree_util.tree_map(
      lambda r, t: r.astype(t.dtype) if _is_array(t) else r, restored, target)
  # Orbax's own restore, as Flax does it.
  checkpointer = checkpointer or ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
  kwargs: dict[str, Any] = {}
  if target is not None:
    kwargs["restore_args"] = ocp.checkpoint_utils.construct_restore_args(target)
  if transforms is not None:
    kwargs["transforms"] = transforms
  restored = serialization.to_state_dict(checkpointer.restore(ckpt_path, item=target, **kwargs))
  return restored if target is None else serialization.from_state_dict(target, restored)


def _restore_msgpack(ckpt_path: str, target: Any, step: Any, allow_partial: bool) -> PyTree:
  with open(ckpt_path, "rb") as f:
    data = f.read()
  try:
    state = serialization.msgpack_restore(data)
  except Exception as e:  # any decoding failure means damaged bytes
    raise errors.CheckpointCorruptedError(ckpt_path, e) from e
  placeholders = [x for x in jax.tree_util.tree_leaves(state)
                  if isinstance(x, str) and x.startswith(MP_ARRAY_PH)]
  if placeholders and not allow_partial:
    raise errors.MPACheckpointingRequiredError(ckpt_path, step)
  return state if target is None else serialization.from_state_dict(target, state)


def convert_pre_linen(params: PyTree) -> PyTree:
  """Renames pre-Linen submodules (numbered across classes) to Linen's per-class numbers.

  Before Linen, ``Conv`` then ``Dense`` in one module were ``Conv_0`` and ``Dense_1``;
  Linen numbers each class on its own (``Conv_0``, ``Dense_0``). Trees already in
  Linen's naming come back unchanged; FrozenDicts stay FrozenDicts.

  >>> convert_pre_linen({"Conv_0": {"w": 1}, "Dense_1": {"w": 2}, "Dense_3": {"w": 3}})
  {'Conv_0': {'w': 1}, 'Dense_0': {'w': 2}, 'Dense_1': {'w': 3}}
  """
  if not isinstance(params, dict | core.FrozenDict):
    return params
  renamed: dict[str, Any] = {}
  counts: dict[str, int] = {}
  for name in natural_sort(params.keys()):
    match = MODULE_NUM_RE.match(name)
    new_name = name
    if match:
      module = match.group(1)
      new_name = f"{module}_{counts.get(module, 0)}"
      counts[module] = counts.get(module, 0) + 1
    renamed[new_name] = convert_pre_linen(params[name])
  return core.freeze(renamed) if isinstance(params, core.FrozenDict) else renamed
