"""Errors of flaxen.checkpoint."""

from __future__ import annotations

from collections.abc import Iterable

from flaxen.errors.base import FlaxenError, names, short_repr

__all__ = [
  "CheckpointError", "CheckpointNotFoundError", "CheckpointExistsError",
  "CheckpointCorruptedError", "CheckpointMismatchError", "UnsupportedCheckpointLeafError",
  "CheckpointKeyCollisionError", "EmptyCheckpointError", "CheckpointManagerArgumentError",
  "CheckpointManagerClosedError", "AlreadyExistsError",
]


class CheckpointError(FlaxenError):
  """Base class of the errors of :mod:`flaxen.checkpoint`."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
  """No checkpoint exists at the path, or the manager holds no such step."""

  def __init__(self, path: str, detail: str = "", available: Iterable[int] | None = None):
    self.path = path
    steps = "" if available is None else f" Steps available: {names(available)}."
    super().__init__(
      f"No checkpoint found at {path}{': ' + detail if detail else ''}.{steps} Fix: check "
      "the path (relative paths are taken from the current directory) and that the save "
      "finished (call wait_until_finished() after an async save)."
    )


class CheckpointExistsError(CheckpointError, FileExistsError):
  """A save would overwrite a checkpoint that already exists."""

  def __init__(self, path: str):
    self.path = path
    super().__init__(
      f"A checkpoint already exists at {path}. Fix: save under a new path or step, or pass "
      "force=True to replace it."
    )


class AlreadyExistsError(CheckpointExistsError):
  """A write would replace a file or directory that already exists (Flax's name)."""


class CheckpointCorruptedError(CheckpointError, ValueError):
  """A checkpoint's files are missing, truncated or unreadable; nothing was restored."""

  def __init__(self, path: str, cause: BaseException | str):
    self.path = path
    reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
    super().__init__(
      f"The checkpoint at {path} is incomplete or corrupted and was not restored "
      f"({short_repr(reason, 300)}). Fix: restore an earlier checkpoint (for a "
      "CheckpointManager, pass an older step from all_steps()), or save it again."
    )


class CheckpointMismatchError(CheckpointError, ValueError):
  """The target's tree, shapes or dtypes differ from what the checkpoint holds.

  ``path`` is the '/'-joined path of the first leaf that differs, ``expected`` describes
  the target there and ``found`` the checkpoint.
  """

  def __init__(self, checkpoint: str, path: str, expected: str, found: str):
    self.path = path
    self.expected = expected
    self.found = found
    super().__init__(
      f"Checkpoint {checkpoint} does not match the target at {path!r}: the target expects "
      f"{expected}, the checkpoint holds {found}. Fix: restore into a target built the "
      "same way as the saved tree (same model configuration and dtypes), or restore with "
      "target=None to get the raw nested dict and convert it yourself."
    )


class UnsupportedCheckpointLeafError(CheckpointError, TypeError):
  """A leaf of the tree is not something a checkpoint can store or restore into."""

  def __init__(self, path: str, leaf: object, allowed: str):
    self.path = path
    super().__init__(
      f"Leaf {path!r} is a {type(leaf).__name__} ({short_repr(leaf)}); checkpoints hold "
      f"{allowed}. Fix: convert it to an array, or mark it "
      "struct.field(pytree_node=False) so it is part of the tree's structure, not its data."
    )


class CheckpointKeyCollisionError(CheckpointError, ValueError):
  """Two leaves of the tree would be stored under the same name.

  Checkpoint keys are strings (``1`` and ``'1'`` collide), and orbax names each leaf's
  storage by its keys joined with '.', so ``{'a.b': x}`` and ``{'a': {'b': y}}`` collide.
  """

  def __init__(self, path: str, other: str | None = None):
    self.path = path
    if other is None:
      what = f"Two leaves of the tree are both stored under {path!r}: keys become strings"
    else:
      what = f"Leaves {other!r} and {path!r} would share one storage name: orbax joins keys"
      what += " with '.'"
    super().__init__(
      f"{what}. Fix: rename the keys so that they stay distinct as strings without '.'."
    )


class EmptyCheckpointError(CheckpointError, ValueError):
  """The tree to save has no leaves."""

  def __init__(self, path: str):
    self.path = path
    super().__init__(
      f"Nothing to save at {path}: the tree has no array or scalar leaves. Fix: pass the "
      "variables or state to save (e.g. the 'params' collection, nnx.state(model))."
    )


class CheckpointManagerArgumentError(CheckpointError, ValueError):
  """A CheckpointManager option or save argument is invalid."""

  def __init__(self, argument: str, value: object, expected: str):
    self.argument = argument
    super().__init__(
      f"CheckpointManager got {argument}={short_repr(value)}; expected {expected}. Fix: "
      f"pass a valid {argument}."
    )


class CheckpointManagerClosedError(CheckpointError, RuntimeError):
  """A CheckpointManager was used after ``close()`` (or after its ``with`` block)."""

  def __init__(self, directory: str, method: str):
    super().__init__(
      f"CheckpointManager({directory!r}).{method}() was called after close(). Fix: create "
      "a new CheckpointManager for the directory, or call close() only when done with it."
    )
