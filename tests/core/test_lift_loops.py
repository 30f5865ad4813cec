"""core.scan, core.remat, core.remat_scan and core.while_loop, against hand-written JAX."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import core

# float32 tanh/matmul chains of length <= 6 over 2-vectors: a few ulps
TOL = dict(rtol=1e-5, atol=1e-6)


def cell(scope, c, x):
  w = scope.param("w", jax.nn.initializers.normal(1.0), (2, 2))
  counter = scope.variable("counter", "n", lambda: jnp.zeros((), jnp.int32))
  if scope.is_mutable_collection("counter") and not scope.get_flag("initializing"):
    counter.value += 1
  c = jnp.tanh(c @ w + x)
  return c, 2 * c


def test_scan_broadcast_params_with_carry_matches_lax_scan():
  scanned = core.scan(cell, variable_broadcast="params", variable_carry="counter",
                      split_rngs={"params": False})
  c0, xs = jnp.zeros(2), jnp.arange(6.0).reshape(3, 2) / 6
  (_, _), v = core.init(scanned)(jax.random.key(0), c0, xs)
  w = v["params"]["w"]
  assert w.shape == (2, 2)
  (c, ys), upd = core.apply(scanned, mutable="counter")(v, c0, xs)

  def ref_step(c, x):
    c = jnp.tanh(c @ w + x)
    return c, 2 * c

  ref_c, ref_ys = jax.lax.scan(ref_step, c0, xs)
  np.testing.assert_allclose(c, ref_c, **TOL)
  np.testing.assert_allclose(ys, ref_ys, **TOL)
  assert int(upd["counter"]["n"]) == 3  # carried through the three steps


def test_scan_variable_axes_gives_per_step_params():
  scanned = core.scan(cell, variable_axes={"params": 0}, variable_broadcast="counter",
                      split_rngs={"params": True}, reverse=True)
  c0, xs = jnp.zeros(2), jnp.ones((3, 2))
  _, v = core.init(scanned)(jax.random.key(0), c0, xs)
  w = v["params"]["w"]
  assert w.shape == (3, 2, 2) and not np.allclose(w[0], w[1])
  c, ys = core.apply(scanned)(v, c0, xs)
  ref_c, ref_ys = jax.lax.scan(lambda c, t: (jnp.tanh(c @ t[0] + t[1]),) * 2, c0, (w, xs),
                               reverse=True)
  np.testing.assert_allclose(c, ref_c, **TOL)
  np.testing.assert_allclose(ys, 2 * ref_ys, **TOL)


def layer(scope, x):
  return jnp.tanh(x @ scope.param("w", jax.nn.initializers.normal(1.0), (2, 2)))


def test_remat_matches_and_checkpoints():
  f = core.remat(layer)
  x = jnp.ones(2)
  _, v = core.init(f)(jax.random.key(0), x)
  w = v["params"]["w"]
  loss = lambda v, x: core.apply(f)(v, x).sum()
  ref = lambda w, x: jnp.tanh(x @ w).sum()
  np.testing.assert_allclose(loss(v, x), ref(w, x), **TOL)
  np.testing.assert_allclose(jax.grad(loss)(v, x)["params"]["w"], jax.grad(ref)(w, x), **TOL)
  jaxpr = str(jax.make_jaxpr(jax.grad(loss))(v, x))
  assert "checkpoint" in jaxpr or "remat" in jaxpr


def test_remat_scan_stacks_params_and_matches_loop():
  stack = core.remat_scan(layer, lengths=(2, 3))
  x = jnp.array([0.3, -0.2])
  _, v = core.init(stack)(jax.random.key(0), x)
  w = v["params"]["w"]
  assert w.shape == (2, 3, 2, 2)
  y = core.apply(stack)(v, x)
  ref = x
  for i in range(2):
    for j in range(3):
      ref = jnp.tanh(ref @ w[i, j])
  np.testing.assert_allclose(y, ref, **TOL)
  g = jax.grad(lambda v: core.apply(stack)(v, x).sum())(v)["params"]["w"]
  assert g.shape == w.shape and bool(jnp.all(jnp.isfinite(g)))


def test_while_loop_with_carry_variables_and_split_rngs():
  def f(scope, n):
    scope.put_variable("state", "i", 0)
    scope.put_variable("state", "keys", jnp.zeros((3, 2), jnp.uint32))

    def cond_fn(scope, c):
      return scope.get_variable("state", "i") < n

    def body_fn(scope, c):
      i = scope.get_variable("state", "i")
      key = jax.random.key_data(scope.make_rng("loop"))
      scope.put_variable("state", "keys", scope.get_variable("state", "keys").at[i].set(key))
      scope.put_variable("state", "i", i + 1)
      return c * 2.0

    return core.while_loop(cond_fn, body_fn, scope, jnp.float32(1.0),
                           carry_variables="state", split_rngs={"loop": True})

  y, v = core.apply(f, mutable=True)({}, 3, rngs={"loop": jax.random.key(0)})
  assert float(y) == 8.0 and int(v["state"]["i"]) == 3
  keys = np.asarray(v["state"]["keys"])
  assert len({tuple(k) for k in keys}) == 3  # a fresh key per iteration


def test_cond_runs_the_chosen_branch():
  def f(scope, x, pred):
    return core.cond(pred, layer, lambda s, x: -layer(s, x), scope, x)

  x = jnp.ones(2)
  a, v = core.init(f)(jax.random.key(0), x, True)
  b = core.apply(f)(v, x, False)
  np.testing.assert_allclose(a, -b, **TOL)
  np.testing.assert_allclose(a, jnp.tanh(x @ v["params"]["w"]), **TOL)


def test_scan_without_constancy_check_traces_once_at_init():
  traces = []

  def step(scope, c, x):
    traces.append(1)
    w = scope.param("w", jax.nn.initializers.normal(1.0), (2, 2))
    return jnp.tanh(c @ w + x), None

  for check, expected in ((True, 2), (False, 1)):
    traces.clear()
    scanned = core.scan(step, variable_axes={"params": 0}, split_rngs={"params": True},
                        check_constancy_invariants=check)
    _, v = core.init(scanned)(jax.random.key(0), jnp.zeros(2), jnp.ones((3, 2)))
    assert len(traces) == expected  # the extra pass creates broadcast variables
    assert v["params"]["w"].shape == (3, 2, 2)
