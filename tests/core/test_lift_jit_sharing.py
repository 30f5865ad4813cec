"""core.jit of a scope function called on two sibling scopes: one trace, own variables."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import core

# float32 matmuls of 2x3 inputs: a few ulps
TOL = dict(rtol=1e-6, atol=1e-6)


def layer_fn(traces):
  def layer(scope, module_hash, x):
    traces.append(scope.path)
    w = scope.param("w", jax.nn.initializers.normal(1.0), (x.shape[-1], x.shape[-1]))
    count = scope.variable("counts", "n", lambda: jnp.zeros((), jnp.int32))
    if not scope.get_flag("initializing"):
      count.value += 1
    u = jax.random.uniform(scope.make_rng("noise"), x.shape)
    return jnp.tanh(x @ w) + u, u

  return layer


def test_sibling_scopes_share_one_trace_and_keep_their_own_variables():
  traces = []
  shared = core.jit(layer_fn(traces))

  def model(scope, x, fresh=False):
    us = []
    for name in ("a", "b"):
      # fresh: a jit of its own per scope, so nothing is shared (the reference)
      fn = core.jit(layer_fn([])) if fresh else shared
      x, u = fn(scope.push(name), "layer", x)
      us.append(u)
    return x, us

  x = jnp.ones((2, 3))
  rngs = {"params": jax.random.key(0), "noise": jax.random.key(1)}
  _, v = core.init(model)(rngs, x)
  assert traces == [("a",)]  # "b" reuses the trace of "a"
  assert not np.allclose(v["params"]["a"]["w"], v["params"]["b"]["w"])
  noise = {"noise": jax.random.key(2)}
  (y, us), state = core.apply(model, mutable="counts")(v, x, rngs=noise)
  assert len(traces) == 2
  assert state["counts"] == {"a": {"n": 1}, "b": {"n": 1}}
  # "b" ran a trace made on "a": its params and noise key must still be its own
  (_, us_ref), state_ref = core.apply(model, mutable="counts")(v, x, True, rngs=noise)
  for u, u_ref in zip(us, us_ref, strict=True):
    np.testing.assert_array_equal(u, u_ref)  # same key, same sampler: bit-identical
  assert not np.allclose(us[0], us[1])
  assert state_ref == state
  w = v["params"]
  ref = jnp.tanh((jnp.tanh(x @ w["a"]["w"]) + us[0]) @ w["b"]["w"]) + us[1]
  np.testing.assert_allclose(y, ref, **TOL)
