"""nnx.metrics against NumPy: Average, Accuracy, Welford, MultiMetric; state in Variables so
updates work inside nnx.jit."""

import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx

RNG = np.random.default_rng(0)
BATCHES = [RNG.normal(3.0, 2.0, size=n).astype(np.float32) for n in (5, 1, 7)]


def test_average_matches_numpy_and_resets():
  avg = nnx.metrics.Average()
  assert np.isnan(avg.compute())
  for b in BATCHES:
    avg.update(values=b)
  np.testing.assert_allclose(avg.compute(), np.concatenate(BATCHES).mean(), rtol=1e-6)
  avg.update(values=2.0)  # a scalar counts once
  np.testing.assert_allclose(avg.compute(), np.concatenate([*BATCHES, [2.0]]).mean(), rtol=1e-6)
  avg.reset()
  assert np.isnan(avg.compute())


def test_average_argname_mask_and_missing_key():
  avg = nnx.metrics.Average("loss")
  avg.update(loss=jnp.array([1.0, 2.0, 100.0]), mask=jnp.array([True, True, False]))
  assert float(avg.compute()) == 1.5
  with pytest.raises(errors.MetricInputError, match="'loss'"):
    avg.update(values=jnp.ones(2))


def test_accuracy_multiclass_and_binary():
  logits = RNG.normal(size=(10, 4)).astype(np.float32)
  labels = RNG.integers(0, 4, size=10)
  acc = nnx.metrics.Accuracy()
  acc.update(logits=logits[:6], labels=labels[:6])
  acc.update(logits=logits[6:], labels=labels[6:], values=None)
  np.testing.assert_allclose(acc.compute(), (logits.argmax(-1) == labels).mean(), rtol=1e-6)
  binary = nnx.metrics.Accuracy(threshold=0.0)
  scores, truth = logits[:, 0], labels % 2 == 1
  binary.update(logits=scores, labels=truth)
  np.testing.assert_allclose(binary.compute(), ((scores > 0) == truth).mean(), rtol=1e-6)
  with pytest.raises(errors.MetricInputError):
    acc.update(logits=logits, labels=labels.astype(np.float32))
  with pytest.raises(errors.MetricInputError):
    acc.update(logits=logits[:, 0], labels=labels)


def test_welford_matches_numpy():
  w = nnx.metrics.Welford()
  for b in BATCHES:
    w.update(values=b)
  allv = np.concatenate(BATCHES).astype(np.float64)
  stats = w.compute()
  np.testing.assert_allclose(stats.mean, allv.mean(), rtol=1e-5)
  np.testing.assert_allclose(stats.standard_deviation, allv.std(), rtol=1e-5)
  np.testing.assert_allclose(stats.standard_error_of_mean, allv.std() / np.sqrt(allv.size),
                             rtol=1e-5)
  w.reset()
  assert int(w.count.value) == 0


def test_multi_metric_inside_jit():
  metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average())

  @nnx.jit
  def step(metrics, logits, labels, loss):
    metrics.update(logits=logits, labels=labels, values=loss)

  logits = RNG.normal(size=(2, 6, 3)).astype(np.float32)
  labels = RNG.integers(0, 3, size=(2, 6))
  losses = RNG.random((2, 6)).astype(np.float32)
  for i in range(2):
    step(metrics, logits[i], labels[i], losses[i])
  out = metrics.compute()
  assert set(out) == {"accuracy", "loss"}
  np.testing.assert_allclose(out["accuracy"], (logits.argmax(-1) == labels).mean(), rtol=1e-6)
  np.testing.assert_allclose(out["loss"], losses.mean(), rtol=1e-6)
  assert all(isinstance(v, nnx.metrics.MetricState)
             for v in jax_leaves(nnx.state(metrics)))
  metrics.reset()
  assert np.isnan(metrics.compute()["loss"])


def jax_leaves(state):
  return [v for _, v in nnx.to_flat_state(state)]
