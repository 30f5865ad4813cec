"""Early stopping: stop training once a metric has stopped improving for a while."""

from __future__ import annotations

import math

from flaxen import struct

__all__ = ["EarlyStopping"]


class EarlyStopping(struct.PyTreeNode):
  """Tracks the best value of a metric to minimize and counts updates without improvement.

  An update improves when it lowers ``best_metric`` by more than ``min_delta`` (the first
  update always does). ``should_stop`` turns True on the first non-improving update that
  finds ``patience_count >= patience``, i.e. after ``patience + 1`` non-improving updates
  in a row, and stays True until :meth:`reset`.

  Attributes:
    min_delta: how much lower than ``best_metric`` a metric must be to count as better.
    patience: how many non-improving updates in a row are tolerated.
    best_metric: the best metric so far (``inf`` before the first update).
    patience_count: non-improving updates since the last improvement.
    should_stop: whether training should stop.
    has_improved: whether the latest update improved ``best_metric``.

  >>> from flaxen.training.early_stopping import EarlyStopping
  >>> es = EarlyStopping(min_delta=0.1, patience=1)
  >>> for loss in [1.0, 0.95, 0.97]:
  ...   es = es.update(loss)
  >>> es.best_metric, es.patience_count, es.should_stop
  (1.0, 2, True)
  """

  min_delta: float = 0
  patience: int = 0
  best_metric: float = float("inf")
  patience_count: int = 0
  should_stop: bool = False
  has_improved: bool = False

  def reset(self) -> EarlyStopping:
    """The same settings with the tracking state cleared."""
    return self.replace(
      best_metric=float("inf"), patience_count=0, should_stop=False, has_improved=False
    )

  def update(self, metric) -> EarlyStopping:
    """The state after seeing ``metric`` (a new instance; this one is unchanged)."""
    if math.isinf(self.best_metric) or self.best_metric - metric > self.min_delta:
      return self.replace(best_metric=metric, patience_count=0, has_improved=True)
    return self.replace(
      patience_count=self.patience_count + 1,
      should_stop=self.should_stop or self.patience_count >= self.patience,
      has_improved=False,
    )
