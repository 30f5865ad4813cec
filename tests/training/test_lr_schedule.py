"""The deprecated lr_schedule builders: values against the formulas, and their warning."""

import logging
import math

import numpy as np
import pytest

from flaxen.training import lr_schedule


def warmup(step, epochs, steps_per_epoch):
  return min(1.0, step / (epochs * steps_per_epoch)) if epochs > 0 else 1.0


def test_constant_with_warmup(caplog):
  with caplog.at_level(logging.WARNING):
    fn = lr_schedule.create_constant_learning_rate_schedule(0.1, 10, warmup_length=2)
  assert "deprecated" in caplog.text and "optax" in caplog.text
  for step in [0, 5, 20, 100]:
    np.testing.assert_allclose(fn(step), 0.1 * warmup(step, 2, 10), rtol=1e-6)


def test_stepped_boundaries_are_exclusive():
  fn = lr_schedule.create_stepped_learning_rate_schedule(
    1.0, 10, [[3, 0.1], [6, 0.01]])
  # boundaries at steps 30 and 60; the factor applies from the step after the boundary
  want = {0: 1.0, 30: 1.0, 31: 0.1, 60: 0.1, 61: 0.01, 1000: 0.01}
  for step, lr in want.items():
    np.testing.assert_allclose(fn(step), lr, rtol=1e-6)


@pytest.mark.parametrize("warm", [0.0, 1.0])
def test_cosine(warm):
  fn = lr_schedule.create_cosine_learning_rate_schedule(0.5, 4, 10, warmup_length=warm)
  for step in [0, 1, 7, 20, 39, 40]:
    want = 0.5 * (0.5 + 0.5 * math.cos(math.pi * step / 40)) * warmup(step, warm, 4)
    np.testing.assert_allclose(fn(step), want, rtol=1e-5, atol=1e-7)  # float32 cos
