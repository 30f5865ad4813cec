"""core.vmap and core.jit of scope functions, against hand-written JAX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import core, errors

# float32 matmuls of 2x3 inputs: a few ulps
TOL = dict(rtol=1e-6, atol=1e-6)


def dense(scope, x):
  w = scope.param("w", jax.nn.initializers.normal(1.0), (x.shape[-1], 2))
  b = scope.param("b", jax.nn.initializers.normal(1.0), (2,))
  return jnp.tanh(x @ w + b)


def test_vmap_per_example_params_match_jax_vmap():
  batched = core.vmap(dense, variable_axes={"params": 0}, split_rngs={"params": True})
  x = jnp.arange(6.0).reshape(2, 3)
  y, v = core.init(batched)(jax.random.key(0), x)
  w, b = v["params"]["w"], v["params"]["b"]
  assert w.shape == (2, 3, 2) and b.shape == (2, 2)
  assert not np.allclose(w[0], w[1])  # split params rng: each example its own init
  ref = jax.vmap(lambda w, b, x: jnp.tanh(x @ w + b))(w, b, x)
  np.testing.assert_allclose(y, ref, **TOL)
  np.testing.assert_allclose(core.apply(batched)(v, x), ref, **TOL)


def test_vmap_broadcast_params_and_kwargs():
  shared = core.vmap(dense, variable_axes={"params": None}, split_rngs={"params": False},
                     in_axes=0)
  x = jnp.arange(6.0).reshape(2, 3)
  y, v = core.init(shared)(jax.random.key(1), x)
  assert v["params"]["w"].shape == (3, 2)
  np.testing.assert_allclose(y, jnp.tanh(x @ v["params"]["w"] + v["params"]["b"]), **TOL)


def test_vmap_of_scope_pytree_rebuilds_child():
  seen = []

  def f(scope):
    child = scope.push("a")

    def g(scopes, x):
      outer, inner = scopes
      seen.append(inner.parent is outer)
      inner.put_variable("state", "x", x * 2)
      return x

    core.vmap(g, variable_axes={"state": 0}, split_rngs={})((scope, child), jnp.ones(2))

  _, v = core.init(f)(jax.random.key(0))
  assert seen == [True]
  np.testing.assert_array_equal(v["state"]["a"]["x"], [2.0, 2.0])


def test_jit_caches_and_matches():
  traces = []

  @core.jit
  def f(scope, module_hash, x):
    traces.append(module_hash)
    if scope.is_mutable_collection("intermediates") and not scope.get_flag("initializing"):
      scope.put_variable("intermediates", "h", x + 1)
    return dense(scope, x)

  x = jnp.ones((2, 3))
  _, v = core.init(f)(jax.random.key(0), "k", x)
  core.init(f)(jax.random.key(0), "k", x)
  assert len(traces) == 1  # the same init again is cached
  y = core.apply(f)(v, "k", x)
  core.apply(f)(v, "k", x)
  assert len(traces) == 2  # apply traces once (other flags and mutability)
  np.testing.assert_allclose(y, jnp.tanh(x @ v["params"]["w"] + v["params"]["b"]), **TOL)
  _, state = core.apply(f, mutable="intermediates")(v, "k", x)
  assert len(traces) == 3  # what is mutable is part of the cache key
  np.testing.assert_array_equal(state["intermediates"]["h"], x + 1)
  core.apply(f)(v, "other", x)
  assert traces[-1] == "other" and len(traces) == 4  # so is the hash key


def test_jit_static_argnums_counts_scope_as_zero():
  def f(scope, _, x, n):
    return x * n  # n is static: a Python int used as a multiplier

  y = core.apply(core.jit(f, static_argnums=2))({}, None, jnp.ones(2), 3)
  np.testing.assert_array_equal(y, [3.0, 3.0])


def test_lifted_function_needs_a_scope():
  with pytest.raises(errors.LiftScopeError):
    core.vmap(dense, variable_axes={}, split_rngs={})(jnp.ones(3), jnp.ones(3))


def test_scan_write_to_broadcast_collection_raises():
  def f(scope, x):
    scope.put_variable("state", "n", 0)

    def g(scope, c, x):
      scope.put_variable("state", "n", 1)
      return c, x

    return core.scan(g, split_rngs={})(scope, x, jnp.ones((2, 1)))

  with pytest.raises(errors.TransformImmutableCollectionError,
                     match=r"flaxen\.core\.scan keeps collection 'state'.*variable_carry='state'"):
    core.init(f)(jax.random.key(0), jnp.ones(1))


def test_vmap_infers_axis_size_from_mapped_variables():
  def noisy(scope, x):
    w = scope.param("w", jax.nn.initializers.normal(1.0), (2,))
    return x * w + jax.random.normal(scope.make_rng("noise"), (2,))

  mapped = core.vmap(noisy, variable_axes={"params": 0}, split_rngs={"params": True,
                                                                      "noise": True},
                     in_axes=None, axis_size=3)
  x = jnp.ones(2)
  _, v = core.init(mapped)({"params": jax.random.key(0), "noise": jax.random.key(1)}, x)
  no_size = core.vmap(noisy, variable_axes={"params": 0},
                      split_rngs={"params": True, "noise": True}, in_axes=None)
  y = core.apply(no_size)(v, x, rngs={"noise": jax.random.key(2)})
  assert y.shape == (3, 2)  # the size comes from the params' mapped axis
  assert not np.allclose(y[0] - x * v["params"]["w"][0], y[1] - x * v["params"]["w"][1])
