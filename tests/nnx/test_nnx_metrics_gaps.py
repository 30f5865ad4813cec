"""Metric paths the main metric tests leave out: the abstract base and binary shape checks."""

import jax.numpy as jnp
import pytest

from flaxen import errors, nnx


def test_base_metric_methods_must_be_overridden():
  metric = nnx.metrics.Metric()
  for call in (metric.reset, metric.update, metric.compute):
    with pytest.raises(NotImplementedError):
      call()


def test_binary_accuracy_rejects_logits_not_shaped_like_labels():
  acc = nnx.metrics.Accuracy(threshold=0.5)
  with pytest.raises(errors.MetricInputError, match=r"\(4, 1\) and \(4,\)"):
    acc.update(logits=jnp.zeros((4, 1)), labels=jnp.zeros(4, bool))
  acc.update(logits=jnp.array([0.2, 0.9]), labels=jnp.array([False, False]))
  assert float(acc.compute()) == 0.5  # the failed update added nothing
