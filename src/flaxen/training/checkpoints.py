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
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax
import orbax.checkpoint as ocp

from flaxen import core
from flaxen.configurations import config
from flaxen.errors import (
  CheckpointCorruptedError,
  CheckpointStepNotFoundError,
  InvalidCheckpointError,
)
from flaxen.training import checkpoint_msgpack, checkpoint_orbax
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
from flaxen.training.checkpoint_msgpack import MP_ARRAY_PH
from flaxen.training.checkpoint_orbax import (
  ORBAX_CKPT_FILENAME,
  ORBAX_MANIFEST_OCDBT,
  ORBAX_METADATA_FILENAME,
)

__all__ = [
  "AsyncManager", "COMMIT_SUCCESS_FILE", "MODULE_NUM_RE", "MP_ARRAY_PH", "MP_ARRAY_POSTFIX",
  "ORBAX_CKPT_FILENAME", "ORBAX_MANIFEST_OCDBT", "ORBAX_METADATA_FILENAME", "SCHEME_RE",
  "SIGNED_FLOAT_RE", "UNSIGNED_FLOAT_RE", "available_steps", "convert_pre_linen",
  "latest_checkpoint", "natural_sort", "restore_checkpoint", "safe_normpath",
  "save_checkpoint", "save_checkpoint_multiprocess",
]

_log = logging.getLogger(__name__)

COMMIT_SUCCESS_FILE = "commit_success.txt"  # Flax's marker of a complete _gda directory

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
    checkpoint_msgpack.save(target, step, pruning, async_manager, multiprocess)
    return ckpt_path
  if os.path.exists(ckpt_path) and not overwrite:
    raise InvalidCheckpointError(ckpt_path, step)
  if not multiprocess and jax.process_count() > 1:
    _log.warning("save_checkpoint called in a job of %d processes: every process must call "
                 "it (or use save_checkpoint_multiprocess), or the devices hang.",
                 jax.process_count())
  if multiprocess and jax.process_index() == 0:
    prune(*pruning)  # before the save, as Flax does: the others are writing meanwhile
  checkpoint_orbax.save(ckpt_path, target, overwrite, orbax_checkpointer)
  if not multiprocess and jax.process_index() == 0:
    prune(*pruning)
  return ckpt_path


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
    CheckpointMismatchError: (Orbax) the target's structure or a shape differs (a dtype
      that differs is cast to the target's, as Orbax casts it).
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
      raise CheckpointStepNotFoundError(ckpt_path, found)
  elif not os.path.exists(ckpt_dir):
    _log.info("No checkpoint directory at %s", ckpt_dir)
    return target
  elif os.path.isdir(ckpt_dir) and not checkpoint_orbax.is_orbax(ckpt_dir):
    ckpt_path = latest_checkpoint(ckpt_dir, prefix)
    if ckpt_path is None:
      _log.info("No checkpoints named %s* in %s", prefix, ckpt_dir)
      return target
  else:
    ckpt_path = ckpt_dir
  if checkpoint_orbax.is_orbax(ckpt_path):
    return checkpoint_orbax.restore(ckpt_path, target, orbax_checkpointer, orbax_transforms)
  if os.path.isdir(ckpt_path):
    raise CheckpointCorruptedError(ckpt_path, "a directory without Orbax's metadata")
  return checkpoint_msgpack.restore(ckpt_path, target, step, allow_partial_mpa_restoration)


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
