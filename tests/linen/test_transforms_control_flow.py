"""nn.cond / nn.switch / nn.while_loop / nn.fori_loop against jax.lax on plain pytrees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors


def close(a, b, tol=1e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


def dense_ref(p, x):
  return x @ p["kernel"] + p["bias"]


class Branchy(nn.Module):
  @nn.compact
  def __call__(self, x, index):
    branches = [lambda m, x: m(x), lambda m, x: jnp.tanh(m(x)), lambda m, x: -m(x)]
    return nn.switch(index, branches, nn.Dense(2), x)


def test_switch_creates_params_in_branches_and_matches_lax_switch():
  x = jax.random.normal(jax.random.key(1), (3,))
  variables = Branchy().init(jax.random.key(0), x, 0)
  p = variables["params"]["Dense_0"]
  assert jax.tree.map(jnp.shape, p) == {"kernel": (3, 2), "bias": (2,)}
  refs = [dense_ref, lambda p, x: jnp.tanh(dense_ref(p, x)), lambda p, x: -dense_ref(p, x)]
  for i in range(3):
    close(Branchy().apply(variables, x, i), refs[i](p, x))
    loss = lambda p, i: jnp.sum(Branchy().apply({"params": p}, x, jnp.asarray(i)))
    grads = jax.grad(loss)(variables["params"], i)
    ref = jax.grad(lambda p, i: jnp.sum(jax.lax.switch(i, refs, p, x)))(p, i)
    close(grads["Dense_0"], ref)


class Gate(nn.Module):
  @nn.compact
  def __call__(self, x, pred):
    return nn.cond(pred, lambda m, x: m(x), lambda m, x: 2 * m(x), nn.Dense(2), x)


def test_cond_under_jit_with_a_traced_predicate():
  x = jnp.ones(3)
  variables = Gate().init(jax.random.key(0), x, True)
  run = jax.jit(lambda v, pred: Gate().apply(v, x, pred))
  p = variables["params"]["Dense_0"]
  close(run(variables, True), dense_ref(p, x))
  close(run(variables, False), 2 * dense_ref(p, x))


class Looper(nn.Module):
  steps: int = 4

  @nn.compact
  def __call__(self, x):
    layer = nn.Dense(x.shape[-1])
    if self.is_initializing():
      layer(x)  # params must exist before the loop: loops cannot create variables
    body = lambda i, m, h: jnp.tanh(m(h)) + i
    return nn.fori_loop(0, self.steps, body, layer, x)


def test_fori_loop_reuses_params_and_matches_lax_fori_loop():
  x = jax.random.normal(jax.random.key(1), (3,))
  variables = Looper().init(jax.random.key(0), x)
  p = variables["params"]["Dense_0"]
  ref = lambda p: jax.lax.fori_loop(0, 4, lambda i, h: jnp.tanh(dense_ref(p, h)) + i, x)
  close(Looper().apply(variables, x), ref(p))
  # static bounds: a scan, so reverse-mode gradients work as with jax.lax.fori_loop
  grads = jax.grad(lambda v: jnp.sum(Looper().apply({"params": v}, x)))(variables["params"])
  close(grads["Dense_0"], jax.grad(lambda p: jnp.sum(ref(p)))(p))


class Counter(nn.Module):
  @nn.compact
  def __call__(self, x):
    acc = self.variable("state", "acc", lambda: jnp.array(0))
    if not self.is_initializing():
      acc.value += 1
    return x * 2


class Doubler(nn.Module):
  carry: bool = True

  @nn.compact
  def __call__(self, x):
    counter = Counter()
    if self.is_initializing():
      return counter(x)
    cond_fn = lambda m, c: jnp.max(c) < 100
    return nn.while_loop(cond_fn, lambda m, c: m(c), counter, x,
                         carry_variables="state" if self.carry else False)


def test_while_loop_threads_carry_variables():
  x = jnp.array([1.0, 3.0])
  variables = Doubler().init(jax.random.key(0), x)
  y, updated = Doubler().apply(variables, x, mutable=["state"])
  ref = jax.lax.while_loop(lambda c: jnp.max(c) < 100, lambda c: c * 2, x)
  close(y, ref)
  assert int(updated["state"]["Counter_0"]["acc"]) == 6  # 3 -> 6 -> ... -> 192: 6 steps
  with pytest.raises(errors.TransformImmutableCollectionError, match="carry_variables='state'"):
    Doubler(carry=False).apply(variables, x, mutable=["state"])


def test_bound_methods_as_branches_run_on_the_lifted_module():
  # ``nn.cond(p, self.f, self.g, self, x)``: the bound methods run on the module passed in
  class Model(nn.Module):
    def setup(self):
      self.dense = nn.Dense(2)

    def double(self, x):
      return 2 * self.dense(x)

    def negate(self, x):
      return -self.dense(x)

    def __call__(self, x, flag):
      return nn.cond(flag, self.double, self.negate, self, x)

  x = jnp.ones(3)
  variables = Model().init(jax.random.key(0), x, True)
  p = variables["params"]["dense"]
  ref = x @ p["kernel"] + p["bias"]
  np.testing.assert_allclose(Model().apply(variables, x, True), 2 * ref, rtol=1e-6)
  np.testing.assert_allclose(Model().apply(variables, x, False), -ref, rtol=1e-6)



def test_bound_methods_as_while_loop_functions():
  class Model(nn.Module):
    def more(self, c):
      return c < self.get_variable("consts", "limit")

    def step(self, c):
      return c + self.get_variable("consts", "inc")

    @nn.compact
    def __call__(self, c):
      return nn.while_loop(self.more, self.step, self, c)

  variables = {"consts": {"limit": 10.0, "inc": 3.0}}
  assert float(Model().apply(variables, 1.0)) == 10.0  # 1 -> 4 -> 7 -> 10
