"""Metrics accumulated over batches: Average, Accuracy, Welford and MultiMetric.

A metric is a graph object whose running sums live in ``MetricState`` Variables, so it can be
passed to (and updated inside) ``nnx.jit`` like a model, or split and merged. ``update`` adds
a batch, ``compute`` returns the value so far, ``reset`` starts over. ``flaxen.nnx.metrics``
is this module under its shorter name.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average('loss'))
>>> metrics.update(logits=jnp.array([[0., 1.], [1., 0.]]), labels=jnp.array([1, 1]),
...                loss=jnp.array([0.5, 1.5]))
>>> {k: float(v) for k, v in metrics.compute().items()}
{'accuracy': 0.5, 'loss': 1.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flaxen import struct
from flaxen.errors.layers import MetricInputError
from flaxen.nnx.graphlib import split as graph_split
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
    raise NotImplementedError(f"{type(self).__name__} must override reset()")

  def update(self, **kwargs: Any) -> None:
    """Adds a batch."""
    raise NotImplementedError(f"{type(self).__name__} must override update()")

  def compute(self) -> Any:
    """The metric's value over every batch since the last reset."""
    raise NotImplementedError(f"{type(self).__name__} must override compute()")

  def split(self, *filters: Any) -> tuple[Any, ...]:
    """``nnx.split(self, *filters)``: the GraphDef and the State(s) of this metric."""
    return graph_split(self, *filters)


def _values(metric: Metric, kwargs: dict[str, Any]) -> Any:
  if metric.argname not in kwargs:
    raise MetricInputError(type(metric).__name__,
                           f"expected the keyword {metric.argname!r}, got {sorted(kwargs)}")
  return kwargs[metric.argname]


def _is_scalar(values: Any) -> bool:
  return isinstance(values, int | float)  # a Python number counts as one value


def _weights(values: jax.Array, mask: Any) -> jax.Array:
  """``mask`` as float weights broadcast to ``values`` (1 where an entry counts)."""
  return jnp.broadcast_to(jnp.asarray(mask, jnp.float32), values.shape)


def _check_mask(metric: Metric, values: Any, mask: Any) -> None:
  if mask is not None and _is_scalar(values):
    raise MetricInputError(type(metric).__name__,
                           "with a mask, the values should be a jax array, got a Python "
                           f"{type(values).__name__}")


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
    self.total.value = jnp.array(0, jnp.float32)
    self.count.value = jnp.array(0, jnp.int32)

  def update(self, mask: jax.Array | None = None, **kwargs: Any) -> None:
    """Adds ``kwargs[argname]`` (an array, or a Python number that counts once); entries
    where ``mask`` is false are skipped.

    Raises:
      MetricInputError: ``argname`` is not among the keywords, or a mask came with a
        Python number.
    """
    values = _values(self, kwargs)
    _check_mask(self, values, mask)
    if _is_scalar(values):
      self.total.value = self.total.value + values
      self.count.value = self.count.value + 1
      return
    values = jnp.asarray(values)
    if mask is None:
      total, count = jnp.sum(values), values.size
    else:
      weights = _weights(values, mask)
      total, count = jnp.sum(values * weights), jnp.sum(weights).astype(jnp.int32)
    self.total.value = self.total.value + total
    self.count.value = self.count.value + count

  def compute(self) -> jax.Array:
    return self.total.value / self.count.value


class Accuracy(Average):
  """The fraction of correct predictions.

  Predictions are ``argmax(logits, -1)`` compared to integer ``labels``; with a
  ``threshold``, binary predictions ``logits >= threshold`` (``logits`` shaped like
  ``labels``) compared to ``labels > 0``.

  Args:
    threshold: for binary accuracy; ``None`` for multi-class.
    *args, **kwargs: passed to :class:`Average` (``argname``).
  """

  def __init__(self, threshold: float | None = None, *args: Any, **kwargs: Any):
    super().__init__(*args, **kwargs)
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
        raise MetricInputError(where, "For multi-class classification, expected logits of "
                               f"shape labels.shape + (num_classes,), got {logits.shape} and "
                               f"labels {labels.shape}")
      if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise MetricInputError(where, f"expected integer labels, got {labels.dtype}")
      correct = jnp.argmax(logits, axis=-1) == labels
    else:
      if logits.shape != labels.shape:
        raise MetricInputError(where, "For binary classification, expected logits shaped like "
                               f"the labels, got {logits.shape} and {labels.shape}")
      if not (jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_):
        raise MetricInputError(where, f"expected integer labels, got {labels.dtype}")
      correct = (logits >= self.threshold) == (labels > 0)
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
    self.count.value = jnp.array(0, jnp.int32)
    self.mean.value = jnp.array(0, jnp.float32)
    self.m2.value = jnp.array(0, jnp.float32)

  def update(self, mask: jax.Array | None = None, **kwargs: Any) -> None:
    """Adds ``kwargs[argname]``; entries where ``mask`` is false are skipped."""
    values = _values(self, kwargs)
    _check_mask(self, values, mask)
    values = jnp.asarray(values, jnp.float32)
    if mask is None:  # jnp.mean / jnp.var: the same rounding as a reference on the batch
      n_b, mean_b, m2_b = values.size, jnp.mean(values), jnp.var(values) * values.size
    else:
      weights = _weights(values, mask)
      n_b = jnp.sum(weights)
      mean_b = jnp.sum(values * weights) / jnp.maximum(n_b, 1.0)
      m2_b = jnp.sum(weights * (values - mean_b) ** 2)
    n_a = self.count.value
    count = n_a + jnp.asarray(n_b).astype(jnp.int32)
    delta = mean_b - self.mean.value
    self.mean.value = self.mean.value + delta * n_b / jnp.maximum(count, 1)
    self.m2.value = self.m2.value + m2_b + delta * delta * n_b * n_a / jnp.maximum(count, 1)
    self.count.value = count

  def compute(self) -> Statistics:
    std = (self.m2.value / self.count.value) ** 0.5
    return Statistics(mean=self.mean.value, standard_error_of_mean=std / self.count.value**0.5,
                      standard_deviation=std)


class MultiMetric(Metric):
  """Several named metrics updated together.

  Every ``update`` keyword goes to every metric, which takes what it needs, except
  ``mask``: a mapping from metric name to that metric's mask (a metric with no entry gets
  no ``mask`` keyword, so its ``update`` need not take one); a single array is the mask
  of every metric.

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
    mask = updates.pop("mask", None)
    for name in self._metric_names:
      if isinstance(mask, Mapping):
        kwargs = {**updates, "mask": mask[name]} if name in mask else updates
      else:
        kwargs = updates if mask is None else {**updates, "mask": mask}
      getattr(self, name).update(**kwargs)

  def compute(self) -> dict[str, Any]:
    return {name: getattr(self, name).compute() for name in self._metric_names}
