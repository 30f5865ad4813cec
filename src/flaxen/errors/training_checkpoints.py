"""Errors of ``flaxen.training.checkpoints`` (Flax's step-numbered checkpoint functions)."""

from __future__ import annotations

from flaxen.errors.base import short_repr
from flaxen.errors.checkpoint import CheckpointError, CheckpointNotFoundError

__all__ = [
  "InvalidCheckpointError", "CheckpointStepNotFoundError", "SingleLeafCheckpointError",
  "MPACheckpointingRequiredError",
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
