"""nn.remat / nn.checkpoint and nn.jit against jax.checkpoint / jax.jit references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.Dense(4)(x)
    return nn.Dense(1)(jnp.sin(x))


def mlp_ref(p, x):
  h = jnp.sin(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
  return h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]


class Outer(nn.Module):
  remat: bool = True

  @nn.compact
  def __call__(self, x):
    cls = nn.remat(MLP) if self.remat else MLP
    return cls(name="mlp")(x)


def test_remat_matches_plain_values_and_grads_and_shows_in_the_jaxpr():
  x = jax.random.normal(jax.random.key(1), (2, 3))
  variables = Outer().init(jax.random.key(0), x)
  params = variables["params"]
  assert set(params) == {"mlp"}
  np.testing.assert_allclose(Outer().apply(variables, x), mlp_ref(params["mlp"], x), rtol=1e-6)

  def loss(p, remat=True):
    return jnp.sum(Outer(remat).apply({"params": p}, x) ** 2)

  grads = jax.grad(loss)(params)
  ref = jax.grad(lambda p: jnp.sum(mlp_ref(p["mlp"], x) ** 2))(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), grads, ref)
  def has_remat(f):
    names = [e.primitive.name for e in jax.make_jaxpr(jax.grad(f))(params).eqns]
    return any("remat" in n or "checkpoint" in n for n in names)

  assert has_remat(loss)
  assert not has_remat(lambda p: loss(p, remat=False))


class Dropout(nn.Module):
  @nn.compact
  def __call__(self, x, deterministic):
    x = nn.Dense(3)(x)
    if deterministic:  # Python control flow: needs a static argument
      return x
    return nn.Dropout(0.5, deterministic=False)(x)


def test_remat_static_argnums_counts_the_module_as_argument_zero():
  Remat = nn.remat(Dropout, static_argnums=(2,))
  x = jnp.ones((2, 3))
  variables = Remat().init(jax.random.key(0), x, True)
  np.testing.assert_allclose(Remat().apply(variables, x, True), Dropout().apply(variables, x, True))
  y = Remat().apply(variables, x, False, rngs={"dropout": jax.random.key(1)})
  assert y.shape == (2, 3)
  with pytest.raises(jax.errors.TracerBoolConversionError):
    nn.remat(Dropout)().apply(variables, x, True)


TRACES = []


class Traced(nn.Module):
  @nn.compact
  def __call__(self, x):
    TRACES.append(1)
    count = self.variable("stats", "calls", jnp.zeros, ())
    if not self.is_initializing():
      count.value += 1
    return nn.Dense(2)(x)


def test_jit_matches_plain_apply_updates_state_and_traces_once():
  Jit = nn.jit(Traced)
  x = jax.random.normal(jax.random.key(1), (3, 4))
  variables = Jit().init(jax.random.key(0), x)
  TRACES.clear()
  for i in range(3):
    y, updated = Jit().apply(variables, x * i, mutable=["stats"])
    np.testing.assert_allclose(y, Traced().apply(variables, x * i, mutable=["stats"])[0],
                               rtol=1e-6)
    assert float(updated["stats"]["calls"]) == float(variables["stats"]["calls"]) + 1
  assert len(TRACES) == 4  # one jit trace, then three un-jitted reference calls
  loss = lambda p: jnp.sum(Jit().apply({**variables, "params": p}, x, mutable=["stats"])[0])
  grads = jax.grad(loss)(variables["params"])
  ref = jax.grad(lambda p: jnp.sum(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]))(
    variables["params"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), grads, ref)


def test_jit_static_argnums_and_methods():
  class Model(nn.Module):
    @nn.compact
    def __call__(self, x, deterministic):
      return Dropout()(x, deterministic)

    def double(self, x):
      return 2 * x

  Jit = nn.jit(Model, static_argnums=(2,), methods=["__call__", "double"])
  x = jnp.ones((2, 3))
  variables = Jit().init(jax.random.key(0), x, True)
  np.testing.assert_allclose(Jit().apply(variables, x, True), Model().apply(variables, x, True))
  np.testing.assert_allclose(Jit().apply(variables, x, method="double"), 2 * x)


def test_transform_of_a_function_needs_a_bound_module():
  from flaxen import errors

  with pytest.raises(errors.TransformTargetError, match="bound Module"):
    nn.remat(lambda mdl, x: x)(MLP(), jnp.ones(2))


def test_a_transformed_method_keeps_the_names_its_caller_gave():
  class Clash(nn.Module):
    @nn.jit
    def helper(self, x, m):
      nn.Dense(2, name="a")  # "a" is taken by the caller's call
      return m(x)

    @nn.compact
    def __call__(self, x):
      return self.helper(x, nn.Dense(2, name="a"))

  with pytest.raises(errors.NameInUseError):
    Clash().init(jax.random.key(0), jnp.ones((1, 2)))

  class AutoNamed(nn.Module):
    @nn.jit
    @nn.compact
    def helper(self, x):
      return nn.Dense(2)(x)

    @nn.compact
    def __call__(self, x):
      return self.helper(nn.Dense(2)(x))

  x = jnp.ones((1, 2))
  params = AutoNamed().init(jax.random.key(0), x)["params"]
  assert sorted(params) == ["Dense_0", "Dense_1"]  # the helper's Dense does not reuse Dense_0
  p0, p1 = params["Dense_0"], params["Dense_1"]
  expected = (x @ p0["kernel"] + p0["bias"]) @ p1["kernel"] + p1["bias"]
  np.testing.assert_allclose(AutoNamed().apply({"params": params}, x), expected, rtol=1e-6)
