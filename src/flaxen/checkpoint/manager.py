"""CheckpointManager: numbered steps in one directory, keeping the latest and the best."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from flaxen import errors
from flaxen.checkpoint import layout, quiet
from flaxen.checkpoint.save_restore import PathLike, absolute, restore_directory

# The name orbax gives the single item of a step saved without a name.
_ITEM = "default"


class CheckpointManager:
  """Saves a pytree per training step under ``directory/<step>`` and prunes old steps.

  Kept are the ``max_to_keep`` most recent steps and, when ``best_fn`` is given, the
  ``keep_best`` best steps by ``best_fn(metrics)``. Every save is atomic: a step's
  directory appears only once it is complete, so a process killed mid-save leaves the
  earlier steps restorable, and :meth:`all_steps` never lists a step still being written.

  Args:
    directory: where the steps live (``str`` or ``pathlib.Path``; made absolute, created
      if missing).
    max_to_keep: how many of the most recent steps to keep; None keeps all.
    best_fn: maps the ``metrics`` passed to :meth:`save` to a number to rank steps by.
    best_mode: ``'max'`` or ``'min'``: whether a larger or smaller ``best_fn`` is better.
    keep_best: how many of the best steps to keep besides the most recent ones.
    async_save: write in a background thread; :meth:`save` returns once the arrays have
      been copied off the device. Call :meth:`wait_until_finished` (or :meth:`close`)
      before relying on the files.

  >>> import tempfile, numpy as np
  >>> from flaxen import checkpoint
  >>> with checkpoint.CheckpointManager(tempfile.mkdtemp(), max_to_keep=2) as mngr:
  ...   for step in range(4):
  ...     mngr.save(step, {"w": np.full((2,), step, np.float32)})
  ...   mngr.wait_until_finished()
  ...   print(mngr.all_steps(), mngr.restore()["w"])
  [2, 3] [3. 3.]
  """

  def __init__(
    self,
    directory: PathLike,
    *,
    max_to_keep: int | None = None,
    best_fn: Callable[[Any], float] | None = None,
    best_mode: Literal["max", "min"] = "max",
    keep_best: int = 1,
    async_save: bool = True,
  ):
    _check_count("max_to_keep", max_to_keep, allow_none=True)
    _check_count("keep_best", keep_best, allow_none=False)
    if best_mode not in ("max", "min"):
      raise errors.CheckpointManagerArgumentError("best_mode", best_mode, "'max' or 'min'")
    self.directory = absolute(directory)
    self._best_fn = best_fn
    self._closed = False
    keep: list[Any] = [policies.LatestN(n=max_to_keep)]
    if best_fn is not None:
      keep.append(policies.BestN(
        get_metric_fn=best_fn, reverse=best_mode == "min", n=keep_best,
        keep_checkpoints_without_metrics=False,
      ))
    options = ocp.CheckpointManagerOptions(
      best_fn=best_fn, best_mode=best_mode,
      preservation_policy=policies.AnyPreservationPolicy(keep),
      enable_async_checkpointing=async_save, cleanup_tmp_directories=True, create=True,
    )
    with quiet.orbax_logs():
      self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler()
      )

  def save(self, step: int, tree: Any, metrics: Mapping[str, Any] | None = None) -> None:
    """Save ``tree`` as ``step``; ``metrics`` (JSON-able scalars) rank it for ``best_fn``.

    Raises:
      AlreadyExistsError (a CheckpointExistsError): ``step`` was saved already.
      CheckpointManagerArgumentError: ``step`` is not a non-negative int, or ``metrics``
        is missing while the manager ranks steps by ``best_fn``.
    """
    self._check_open("save")
    _check_count("step", step, allow_none=False, minimum=0)
    if self._best_fn is not None and metrics is None:
      raise errors.CheckpointManagerArgumentError(
        "metrics", metrics, "a mapping for best_fn to rank this step by"
      )
    steps = self._manager.all_steps()  # including a save in progress
    if step in steps:
      raise errors.AlreadyExistsError(str(self._step_dir(step)))
    if steps and step < max(steps):
      raise errors.CheckpointManagerArgumentError(
        "step", step, f"a step after the latest one saved, {max(steps)}"
      )
    step = int(step)
    layout.check_savable(tree, str(self._step_dir(step)))
    plain = None if metrics is None else {k: _plain(v) for k, v in metrics.items()}
    with quiet.orbax_logs():
      self._manager.save(step, args=ocp.args.StandardSave(tree), metrics=plain)

  def restore(self, step: int | None = None, target: Any = None) -> Any:
    """Restore ``step`` (the latest if None), like :func:`flaxen.checkpoint.restore`.

    Waits for a save in progress first, so the step it writes can be restored.

    Raises:
      CheckpointNotFoundError: no such step (or no step at all).
      CheckpointMismatchError, CheckpointCorruptedError: as :func:`restore`.
    """
    self._check_open("restore")
    self.wait_until_finished()
    steps = self.all_steps()
    step = steps[-1] if step is None and steps else step
    if step not in steps:
      raise errors.CheckpointNotFoundError(
        str(self.directory), "no step saved" if step is None else f"no step {step}", steps
      )
    return restore_directory(self._step_dir(step) / _ITEM, target)

  def all_steps(self) -> list[int]:
    """The steps whose save has completed, in increasing order."""
    return sorted(s for s in self._manager.all_steps() if self._step_dir(s).is_dir())

  def latest_step(self) -> int | None:
    """The most recent completed step, or None."""
    steps = self.all_steps()
    return steps[-1] if steps else None

  def best_step(self) -> int | None:
    """The kept step with the best metrics (None without ``best_fn``); waits for saves."""
    if self._best_fn is None:
      return None
    self.wait_until_finished()
    return self._manager.best_step()

  def wait_until_finished(self) -> None:
    """Block until every async save has been written and committed."""
    with quiet.orbax_logs():
      self._manager.wait_until_finished()

  def close(self) -> None:
    """Finish pending saves and release orbax's resources; later calls are no-ops."""
    if not self._closed:
      self._closed = True
      with quiet.orbax_logs():
        self._manager.close()

  def __enter__(self) -> CheckpointManager:
    return self

  def __exit__(
    self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
  ) -> None:
    self.close()

  def _check_open(self, method: str) -> None:
    if self._closed:
      raise errors.CheckpointManagerClosedError(str(self.directory), method)

  def _step_dir(self, step: int) -> Path:
    return self.directory / str(step)


def _check_count(name: str, value: Any, *, allow_none: bool, minimum: int = 1) -> None:
  if value is None and allow_none:
    return
  if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
    expected = f"an int >= {minimum}" + (" or None" if allow_none else "")
    raise errors.CheckpointManagerArgumentError(name, value, expected)


def _plain(value: Any) -> Any:
  """A metric as a JSON-able Python value (jax and numpy scalars become numbers)."""
  return np.asarray(value).item() if hasattr(value, "dtype") else value
