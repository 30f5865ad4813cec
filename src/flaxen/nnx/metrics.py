"""``flaxen.nnx.metrics``: the metrics of :mod:`flaxen.nnx.training.metrics` under the
shorter path (Flax exposes both)."""

from flaxen.nnx.training.metrics import (
  Accuracy,
  Average,
  Metric,
  MetricState,
  MultiMetric,
  Statistics,
  Welford,
)

__all__ = ["Accuracy", "Average", "Metric", "MetricState", "MultiMetric", "Statistics",
           "Welford"]
