"""The function form of Linen's lifted transforms (``nn.cond(pred, f, g, mdl, x)`` and
friends): the function runs like a compact method of ``mdl``, so it may create variables and
submodules there."""

import jax
import jax.numpy as jnp
import numpy as np

import flaxen.linen as nn


class CountingCond(nn.Module):
  @nn.compact
  def __call__(self, x, pred):
    self.variable("state", "true_count", lambda: 0)
    self.variable("state", "false_count", lambda: 0)

    def true_fn(mdl, x):
      mdl.variable("state", "true_count").value += 1
      return nn.Dense(2, name="dense")(x)

    def false_fn(mdl, x):
      mdl.variable("state", "false_count").value += 1
      return -nn.Dense(2, name="dense")(x)

    return nn.cond(pred, true_fn, false_fn, self, x)


def test_cond_branches_create_and_update_variables_on_the_module():
  m, x = CountingCond(), jnp.ones((1, 3))
  v = m.init(jax.random.key(0), x, True)
  assert jax.tree.map(jnp.shape, v["params"]) == {"dense": {"bias": (2,), "kernel": (3, 2)}}
  assert (int(v["state"]["true_count"]), int(v["state"]["false_count"])) == (1, 0)
  kernel, bias = v["params"]["dense"]["kernel"], v["params"]["dense"]["bias"]
  y, s = m.apply(v, x, False, mutable=["state"])
  np.testing.assert_allclose(y, -(x @ kernel + bias), rtol=1e-6)
  assert (int(s["state"]["true_count"]), int(s["state"]["false_count"])) == (1, 1)
  y, s = m.apply(v, x, True, mutable=["state"])
  np.testing.assert_allclose(y, x @ kernel + bias, rtol=1e-6)
  assert (int(s["state"]["true_count"]), int(s["state"]["false_count"])) == (2, 0)


class LoopWithParam(nn.Module):
  @nn.compact
  def __call__(self, x):
    def body(mdl, c):
      scale = mdl.param("scale", nn.initializers.ones, (c.shape[-1],))
      return nn.Dense(c.shape[-1], name="inner")(c) * scale

    return nn.scan(lambda mdl, c, _: (body(mdl, c), None), variable_broadcast="params",
                   split_rngs={"params": False}, length=3)(self, x, None)[0]


def test_scan_function_creates_auto_named_params_once_and_reuses_them():
  m, x = LoopWithParam(), jnp.ones((2, 4))
  v = m.init(jax.random.key(1), x)
  p = v["params"]
  assert sorted(p) == ["inner", "scale"]
  ref = x
  for _ in range(3):
    ref = (ref @ p["inner"]["kernel"] + p["inner"]["bias"]) * p["scale"]
  np.testing.assert_allclose(m.apply(v, x), ref, rtol=1e-5)
