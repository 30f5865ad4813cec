"""DynamicScale: unscaled values and grads, growth after finite steps, a skipped step."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen.training.dynamic_scale import DynamicScale, DynamicScaleResult


def loss(w, x):
  return jnp.sum((w * x) ** 2)


def test_value_and_grad_are_unscaled_and_match_jax():
  w, x = jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0])
  ds = DynamicScale(scale=1024.0)
  result = jax.jit(lambda ds, w: ds.value_and_grad(loss)(w, x))(ds, w)
  assert isinstance(result, DynamicScaleResult) and bool(result.finite)
  value, grad = jax.value_and_grad(loss)(w, x)
  np.testing.assert_allclose(result.aux, value, rtol=1e-6)  # 1024 is a power of 2: exact
  np.testing.assert_allclose(result.grad, grad, rtol=1e-6)
  assert int(result.dynamic_scale.fin_steps) == 1 and float(result.dynamic_scale.scale) == 1024


def test_has_aux_and_argnums():
  fn = lambda a, b: (jnp.sum(a * b), {"n": 3})
  ds = DynamicScale(scale=8.0)
  _, finite, (value, aux), grads = ds.value_and_grad(fn, argnums=(0, 1), has_aux=True)(
    jnp.ones(2), jnp.full(2, 2.0))
  assert bool(finite) and float(value) == 4.0 and aux == {"n": 3}
  np.testing.assert_array_equal(grads[0], [2.0, 2.0])
  np.testing.assert_array_equal(grads[1], [1.0, 1.0])
  new_ds, finite, g = ds.grad(lambda a: jnp.sum(a * 3))(jnp.ones(2))
  np.testing.assert_array_equal(g, [3.0, 3.0])


def test_scale_grows_after_growth_interval_finite_steps():
  ds = DynamicScale(growth_interval=2, scale=4.0)
  step = jax.jit(lambda ds: ds.value_and_grad(lambda w: w ** 2)(1.0))
  scales, fins = [], []
  for _ in range(6):
    ds, finite, _, _ = step(ds)
    assert bool(finite)
    scales.append(float(ds.scale))
    fins.append(int(ds.fin_steps))
  # fin_steps counts 1, 2; the third finite step sees fin_steps == interval and grows.
  assert fins == [1, 2, 0, 1, 2, 0]
  assert scales == [4.0, 4.0, 8.0, 8.0, 8.0, 16.0]


def test_non_finite_gradient_is_reported_and_scale_backs_off():
  # The float16 gradient of w**2 at w=1 is 2 * scale: above float16's max (65504) it is
  # inf, so the scale must back off twice from 65536 before the step is finite.
  f16_loss = lambda w: jnp.asarray(w, jnp.float16) ** 2
  step = jax.jit(lambda ds: ds.value_and_grad(f16_loss)(1.0))
  ds = DynamicScale(fin_steps=jnp.array(5), scale=jnp.array(65536.0))
  w, history = 1.0, []
  for _ in range(3):
    ds, finite, _, grad = step(ds)
    w = jnp.where(finite, w - 0.25 * grad, w)  # the caller skips non-finite steps
    history.append((bool(finite), float(ds.scale), int(ds.fin_steps), float(w)))
  assert history == [
    (False, 32768.0, 0, 1.0),   # inf gradient: step skipped, scale halved, count reset
    (False, 16384.0, 0, 1.0),   # 2 * 32768 = 65536 still overflows
    (True, 16384.0, 1, 0.5),    # finite: the exact gradient 2.0 is applied
  ]


def test_minimum_scale_bounds_backoff():
  ds = DynamicScale(scale=2.0, minimum_scale=1.5)
  new, finite, _, _ = ds.value_and_grad(lambda w: w * jnp.inf)(1.0)
  assert not bool(finite) and float(new.scale) == 1.5
