"""flaxen.nnx.training.metrics: Metric.split, MultiMetric's per-metric masks, masked
Average/Welford against NumPy, binary Accuracy's threshold, the two module paths."""

import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx
from flaxen.nnx.training import metrics as training_metrics


def test_module_paths_share_one_implementation():
  assert nnx.metrics.Average is training_metrics.Average
  assert nnx.MultiMetric is training_metrics.MultiMetric
  assert nnx.training.metrics is training_metrics


def test_split_merge_keeps_sums():
  w = nnx.metrics.Welford()
  x = np.array([1.0, 4.0, 2.0, 9.0], np.float32)
  w.update(values=jnp.asarray(x))
  graphdef, state = w.split()
  w2 = nnx.merge(graphdef, state)
  w2.update(values=jnp.array([5.0], jnp.float32))
  allx = np.append(x, 5.0)
  stats = w2.compute()
  # float32 sums of 5 small numbers: 1e-6 relative covers the rounding
  np.testing.assert_allclose(stats.mean, allx.mean(), rtol=1e-6)
  np.testing.assert_allclose(stats.standard_deviation, allx.std(), rtol=1e-6)
  np.testing.assert_allclose(stats.standard_error_of_mean, allx.std() / np.sqrt(5), rtol=1e-6)


def test_masked_average_and_welford_match_numpy_on_the_kept_entries():
  x = np.arange(12, dtype=np.float32).reshape(3, 4)
  mask = x % 3 != 0
  avg, w = nnx.metrics.Average(), nnx.metrics.Welford()
  avg.update(values=jnp.asarray(x), mask=jnp.asarray(mask))
  w.update(values=jnp.asarray(x), mask=jnp.asarray(mask))
  kept = x[mask].astype(np.float64)
  assert int(avg.count.value) == kept.size
  np.testing.assert_allclose(avg.compute(), kept.mean(), rtol=1e-6)
  np.testing.assert_allclose(w.compute().mean, kept.mean(), rtol=1e-6)
  np.testing.assert_allclose(w.compute().standard_deviation, kept.std(), rtol=1e-6)


def test_mask_with_a_python_number_is_rejected():
  with pytest.raises(errors.MetricInputError, match="should be a jax array"):
    nnx.metrics.Average().update(values=2.0, mask=jnp.ones(1))


def test_multimetric_routes_masks_by_name():
  class Custom(nnx.metrics.Average):
    def update(self, preds, values):  # no mask keyword: must not receive one
      super().update(values=preds)

  m = nnx.MultiMetric(custom=Custom(), loss=nnx.metrics.Average())
  preds, loss = jnp.array([1.0, 3.0]), jnp.array([1.0, 2.0, 30.0])
  m.update(preds=preds, values=loss, mask={"loss": loss < 10})
  out = m.compute()
  assert float(out["custom"]) == 2.0
  assert float(out["loss"]) == 1.5


def test_multimetric_single_mask_goes_to_every_metric():
  m = nnx.MultiMetric(a=nnx.metrics.Average(), b=nnx.metrics.Average())
  m.update(values=jnp.array([1.0, 5.0]), mask=jnp.array([True, False]))
  assert {k: float(v) for k, v in m.compute().items()} == {"a": 1.0, "b": 1.0}


def test_binary_accuracy_counts_the_threshold_as_positive():
  acc = nnx.metrics.Accuracy(threshold=0.5)
  acc.update(logits=jnp.array([0.5, 0.2, 0.7, 0.1]), labels=jnp.array([1, 1, 0, 0]))
  assert float(acc.compute()) == 0.5  # 0.5 >= 0.5 is positive: entries 0 and 3 right


@pytest.mark.parametrize("logits, labels, threshold, msg", [
  (np.zeros((2, 2, 2)), np.zeros(4, np.int32), None, "For multi-class classification"),
  (np.zeros(4), np.zeros((2, 2), np.int32), 0.5, "For binary classification"),
])
def test_accuracy_rank_errors(logits, labels, threshold, msg):
  with pytest.raises(ValueError, match=msg):
    nnx.metrics.Accuracy(threshold=threshold).update(logits=logits, labels=labels)
