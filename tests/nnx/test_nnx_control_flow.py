"""nnx.cond / switch / fori_loop / while_loop against jax.lax on plain arrays."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx


class Norm(nnx.Module):
  def __init__(self):
    self.scale = nnx.Param(jnp.array([1.0, 2.0]))
    self.mean = nnx.BatchStat(jnp.zeros(2))


def _train(m, x):
  m.mean.value = 0.9 * m.mean.value + 0.1 * x.mean(0)
  return (x - m.mean.value) * m.scale.value


def _eval(m, x):
  return (x - m.mean.value) * m.scale.value


X = jnp.asarray(np.random.RandomState(0).randn(4, 2), jnp.float32)


@pytest.mark.parametrize("pred", [True, False])
def test_cond_updates_batch_stat_in_one_branch_only(pred):
  m = Norm()
  y = nnx.cond(pred, _train, _eval, m, X)

  def ref(pred, mean, scale):
    def train(mean):
      mean = 0.9 * mean + 0.1 * X.mean(0)
      return (X - mean) * scale, mean
    return jax.lax.cond(pred, train, lambda mean: ((X - mean) * scale, mean), mean)

  ref_y, ref_mean = ref(pred, jnp.zeros(2), jnp.array([1.0, 2.0]))
  np.testing.assert_allclose(y, ref_y, rtol=1e-6)
  np.testing.assert_allclose(m.mean.value, ref_mean, rtol=1e-6)


def test_cond_inside_jit_with_traced_predicate_and_grad():
  m = Norm()

  @nnx.jit
  def step(m, x, pred):
    grads = nnx.grad(lambda m: (nnx.cond(pred, _train, _eval, m, x) ** 2).sum())(m)
    return grads

  grads = step(m, X, jnp.array(True))
  ref = jax.grad(lambda s: (((X - 0.1 * X.mean(0)) * s) ** 2).sum())(jnp.array([1.0, 2.0]))
  np.testing.assert_allclose(grads.scale.value, ref, rtol=1e-5)
  np.testing.assert_allclose(m.mean.value, 0.1 * X.mean(0), rtol=1e-6)


def test_switch_three_branches():
  def branch(k):
    def f(m, x):
      m.mean.value = m.mean.value + k
      return x * k
    return f

  for index in range(3):
    m = Norm()
    y = nnx.switch(index, [branch(1.0), branch(2.0), branch(3.0)], m, X)
    np.testing.assert_allclose(y, X * (index + 1))
    np.testing.assert_allclose(m.mean.value, jnp.full(2, index + 1.0))


def test_fori_loop_increments_counter_variable():
  counter = nnx.Variable(jnp.array(0))
  acc = jnp.array(0.0)

  def body(i, val):
    c, a = val
    c.value = c.value + 1
    return c, a + i

  c, a = nnx.fori_loop(0, 5, body, (counter, acc))
  assert c is counter
  assert int(counter.value) == 5
  ref = jax.lax.fori_loop(0, 5, lambda i, v: (v[0] + 1, v[1] + i), (0, 0.0))
  assert float(a) == float(ref[1])


def test_fori_loop_with_traced_bounds_in_jit():
  m = Norm()

  @nnx.jit
  def run(m, n):
    return nnx.fori_loop(0, n, lambda i, m: (_train(m, X), m)[1], m)

  run(m, jnp.array(3))
  mean = jnp.zeros(2)
  for _ in range(3):
    mean = 0.9 * mean + 0.1 * X.mean(0)
  np.testing.assert_allclose(m.mean.value, mean, rtol=1e-6)


def test_while_loop_until_counter_reaches_limit():
  counter = nnx.Variable(jnp.array(0))

  def body(c):
    c.value = c.value + 3
    return c

  nnx.while_loop(lambda c: c.value < 10, body, counter)
  assert int(counter.value) == jax.lax.while_loop(lambda c: c < 10, lambda c: c + 3, 0)


def test_branch_that_adds_an_attribute_is_an_error():
  m = Norm()

  def grow(m):
    m.extra = nnx.Param(jnp.zeros(1))

  with pytest.raises(errors.LoopStructureError, match="structure"):
    nnx.cond(True, grow, lambda m: None, m)


def test_loop_body_returning_another_object_is_an_error():
  a, b = nnx.Variable(jnp.array(0)), nnx.Variable(jnp.array(0))
  with pytest.raises(errors.LoopStructureError):
    nnx.fori_loop(0, 2, lambda i, v: (v[1], v[0]), (a, b))
