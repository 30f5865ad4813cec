"""Errors of ``flaxen.training.checkpoints`` (Flax's step-numbered checkpoint functions)."""

from __future__ import annotations

from flaxen.errors.base import short_repr
from flaxen.errors.checkpoint import (
  CheckpointCorruptedError,
  CheckpointError,
  CheckpointNotFoundError,
)

__all__ = [
  "InvalidCheckpointError", "CheckpointStepNotFoundError", "SingleLeafCheckpointError",
  "MPACheckpointingRequiredError", "MPARestoreTargetRequiredError", "MPARestoreDataCorruptedError",
]


class InvalidCheckpointError(CheckpointError, ValueError):
  """A save would replace the checkpoint of this step, or (msgpack) one of a later step."""

  def __init__(self, path: str, step: object):
    self.path = path
    self.step = step
    super().__init__(
      f"Cannot save the checkpoint of step {step} at {path}: a checkpoint of this step (or, "
      "for msgpack checkpoints, of a later step) already exists. Fix: pass overwrite=True "
      "to replace it (later steps are then removed), or save under a larger step."
    )


class CheckpointStepNotFoundError(CheckpointNotFoundError, ValueError):
  """``restore_checkpoint`` was asked for a step that the directory does not hold."""

  def __init__(self, path: str, available: list | None = None):
    super().__init__(path, "no checkpoint of the requested step", available)


class SingleLeafCheckpointError(CheckpointError, ValueError):
  """The Orbax backend saves pytrees; the target was a single array or number."""

  def __init__(self, path: str, target: object):
    self.path = path
    super().__init__(
      f"Cannot save {short_repr(target)} at {path}: with Orbax, save_checkpoint stores a "
      "pytree, not a single leaf. Fix: wrap it in a dict (target={'value': x})."
    )


class MPACheckpointingRequiredError(CheckpointError, ValueError):
  """A msgpack (legacy) checkpoint cannot hold arrays spread over several processes.

  Raised when saving such arrays in the msgpack format, and when restoring a msgpack
  checkpoint that Flax wrote with them (in a separate ``_gda`` directory).
  """

  def __init__(self, path: str, step: object):
    self.path = path
    super().__init__(
      f"The checkpoint of step {step} at {path} holds arrays that are not fully addressable "
      "by this process; the legacy msgpack format cannot store or restore them. Fix: use "
      "the Orbax backend (flaxen.config.update('flax_use_orbax_checkpointing', True), the "
      "default)."
    )


class MPARestoreTargetRequiredError(MPACheckpointingRequiredError):
  """A msgpack checkpoint that Flax wrote with multi-process arrays was restored without a
  target and without ``allow_partial_mpa_restoration``.

  Args:
    path: the checkpoint file.
    step: its step.
    key: the path of the first multi-process array in the checkpoint, if known.
  """

  def __init__(self, path: str, step: object, key: object = None):
    self.path = path
    at = f" (the first is at {key})" if key else ""
    CheckpointError.__init__(
      self,
      f"The checkpoint of step {step} at {path} holds arrays spread over several processes"
      f"{at}, stored apart from the msgpack file; they cannot be restored without a target. "
      "Fix: pass allow_partial_mpa_restoration=True to restore everything else (those "
      "arrays come back as placeholder strings), or save the model with the Orbax backend."
    )


class MPARestoreDataCorruptedError(CheckpointCorruptedError):
  """The directory of a msgpack checkpoint's multi-process arrays (``<path>_gda``) has no
  ``commit_success.txt``: its save did not finish.

  Args:
    step: the checkpoint's step.
    path: the checkpoint file.
  """

  def __init__(self, step: object, path: str):
    super().__init__(
      path, f"step {step}: its multi-process arrays in {path}_gda have no commit_success.txt, "
      "so their save was halted before completion")
