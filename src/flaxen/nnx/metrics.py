"""Metrics accumulated over batches: Average, Accuracy, Welford and MultiMetric.

A metric is a graph object whose running sums live in ``MetricState`` Variables, so it can be
passed to (and updated inside) ``nnx.jit`` like a model. ``update`` adds a batch,
``compute`` returns the value so far, ``reset`` starts over.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average('loss'))
>>> metrics.update(logits=jnp.array([[0., 1.], [1., 0.]]), labels=jnp.array([1, 1]),
...                loss=jnp.array([0.5, 1.5]))
>>> {k: float(v) for k, v in metrics.compute().items()}
{'accuracy': 0.5, 'loss': 1.0}
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from flaxen import struct
from flaxen.errors.layers import MetricInputError
from flaxen.nnx.object import Object
from flaxen.nnx.variables import Variable

__all__ = ["Accuracy", "Average", "Metric", "MetricState", "MultiMetric", "Statistics",
           "Welford"]


class MetricState(Variable):
  """The Variable type of a metric's running sums."""


class Metric(Object):
  """Base class of metrics: subclasses implement ``reset``, ``update`` and ``compute``."""

  def reset(self) -> None:
    """Clears the accumulated state."""
    raise NotImplementedError

  def update(self, **kwargs: Any) -> None:
    """Adds a batch."""
    raise NotImplementedError

  def compute(self) -> Any:
    """The metric's value over every batch since the last reset."""
    raise NotImplementedError


def _values(metric: Metric, kwargs: dict[str, Any]) -> jax.Array:
  if metric.argname not in kwargs:
    raise MetricInputError(type(metric).__name__,
                           f"expected the keyword {metric.argname!r}, got {sorted(kwargs)}")
  return jnp.asarray(kwargs[metric.argname])


def _mask_weights(values: jax.Array, mask: jax.Array | None) -> jax.Array:
  """1 where an entry counts, 0 where ``mask`` excludes it, broadcast to ``values``."""
  if mask is None:
    return jnp.ones(values.shape, jnp.float32)
  return jnp.broadcast_to(jnp.asarray(mask, jnp.float32), values.shape)


class Average(Metric):
  """The mean of every value seen.

  Args:
    argname: the keyword of ``update`` that holds the values.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> avg = nnx.metrics.Average()
  >>> avg.update(values=jnp.array([1, 2, 3, 4])); avg.update(values=jnp.array([3, 2, 1, 0]))
  >>> avg.compute()
  Array(2., dtype=float32)
  """

  def __init__(self, argname: str = "values"):
    self.argname = argname
    self.total = MetricState(jnp.array(0, jnp.float32))
    self.count = MetricState(jnp.array(0, jnp.int32))

  def reset(self) -> None:
    self.total.value = jnp.zeros_like(self.total.value)
    self.count.value = jnp.zeros_like(self.count.value)

  def update(self, *, mask: jax.Array | None = None, **kwargs: Any) -> None:
    """Adds ``kwargs[argname]`` (an array or number); entries where ``mask`` is false are
    skipped.

    Raises:
      MetricInputError: ``argname`` is not among the keywords.
    """
    values = _values(self, kwargs)
    weights = _mask_weights(values, mask)
    self.total.value = self.total.value + jnp.sum(values * weights)
    self.count.value = self.count.value + jnp.sum(weights).astype(jnp.int32)

  def compute(self) -> jax.Array:
    return self.total.value / self.count.value


class Accuracy(Average):
  """The fraction of correct predictions.

  Predictions are ``argmax(logits, -1)`` compared to integer ``labels``; with a
  ``threshold``, binary predictions ``logits > threshold`` (``logits`` shaped like
  ``labels``) compared to boolean labels.

  Args:
    threshold: for binary accuracy; ``None`` for multi-class.
    argname: unused by ``update`` (kept for the ``Average`` interface).
  """

  def __init__(self, threshold: float | None = None, argname: str = "values"):
    super().__init__(argname)
    self.threshold = threshold

  def update(self, *, logits: jax.Array, labels: jax.Array,  # type: ignore[override]
             mask: jax.Array | None = None, **_: Any) -> None:
    """Adds a batch of ``logits`` and ``labels`` (other keywords are ignored).

    Raises:
      MetricInputError: the shapes or label dtype do not fit (see the class docstring).
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    where = type(self).__name__
    if self.threshold is None:
      if logits.ndim != labels.ndim + 1 or logits.shape[:-1] != labels.shape:
        raise MetricInputError(where, f"expected logits of shape labels.shape + (num_classes,), "
                               f"got {logits.shape} and labels {labels.shape}")
      if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise MetricInputError(where, f"expected integer labels, got {labels.dtype}")
      correct = jnp.argmax(logits, axis=-1) == labels
    else:
      if logits.shape != labels.shape:
        raise MetricInputError(where, f"expected logits shaped like the labels (binary), "
                               f"got {logits.shape} and {labels.shape}")
      correct = (logits > self.threshold) == labels.astype(bool)
    super().update(mask=mask, **{self.argname: correct})


@struct.dataclass
class Statistics:
  """What :class:`Welford` computes."""

  mean: jax.Array
  standard_error_of_mean: jax.Array
  standard_deviation: jax.Array


class Welford(Metric):
  """Running mean and standard deviation (Welford's / Chan's parallel update, which stays
  accurate when the mean is large).

  Args:
    argname: the keyword of ``update`` that holds the values.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> w = nnx.metrics.Welford()
  >>> w.update(values=jnp.array([1., 2.])); w.update(values=jnp.array([3., 4.]))
  >>> float(w.compute().mean), round(float(w.compute().standard_deviation), 4)
  (2.5, 1.118)
  """

  def __init__(self, argname: str = "values"):
    self.argname = argname
    self.count = MetricState(jnp.array(0, jnp.int32))
    self.mean = MetricState(jnp.array(0, jnp.float32))
    self.m2 = MetricState(jnp.array(0, jnp.float32))

  def reset(self) -> None:
    for var in (self.count, self.mean, self.m2):
      var.value = jnp.zeros_like(var.value)

  def update(self, *, mask: jax.Array | None = None, **kwargs: Any) -> None:
    """Adds ``kwargs[argname]``; entries where ``mask`` is false are skipped."""
    values = _values(self, kwargs).astype(jnp.float32)
    weights = _mask_weights(values, mask)
    n_b = jnp.sum(weights)
    mean_b = jnp.sum(values * weights) / jnp.maximum(n_b, 1.0)
    m2_b = jnp.sum(weights * (values - mean_b) ** 2)
    n_a = self.count.value.astype(jnp.float32)
    n = jnp.maximum(n_a + n_b, 1.0)
    delta = mean_b - self.mean.value
    self.mean.value = self.mean.value + delta * n_b / n
    self.m2.value = self.m2.value + m2_b + delta**2 * n_a * n_b / n
    self.count.value = self.count.value + n_b.astype(jnp.int32)

  def compute(self) -> Statistics:
    count = self.count.value.astype(jnp.float32)
    std = jnp.sqrt(self.m2.value / count)
    return Statistics(self.mean.value, std / jnp.sqrt(count), std)


class MultiMetric(Metric):
  """Several named metrics updated together: each ``update`` keyword goes to every metric,
  which takes what it needs.

  Args:
    **metrics: the metrics by name; they become attributes of this object.
  """

  def __init__(self, **metrics: Metric):
    self._metric_names = tuple(metrics)
    for name, metric in metrics.items():
      setattr(self, name, metric)

  def reset(self) -> None:
    for name in self._metric_names:
      getattr(self, name).reset()

  def update(self, **updates: Any) -> None:
    for name in self._metric_names:
      getattr(self, name).update(**updates)

  def compute(self) -> dict[str, Any]:
    return {name: getattr(self, name).compute() for name in self._metric_names}
