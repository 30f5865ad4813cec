"""Transforms of a Module class whose ``methods`` dict gives each method its own arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn

# float32 2x2 matmuls: a few ulps
TOL = dict(rtol=1e-6, atol=1e-6)


class Scale(nn.Module):
  def setup(self):
    self.s = self.param("s", nn.initializers.ones, (2,))

  def __call__(self, x):
    return x * self.s

  def double(self, x):
    return 2 * x * self.s


def test_vmap_methods_dict_overrides_in_axes_per_method():
  VScale = nn.vmap(Scale, variable_axes={"params": 0}, split_rngs={"params": True},
                   methods={"__call__": {}, "double": {"in_axes": None, "axis_size": 3}})

  class Top(nn.Module):
    @nn.compact
    def __call__(self, xs, x):
      m = VScale()
      return m(xs), m.double(x)

  xs, x = jnp.arange(6.0).reshape(3, 2), jnp.array([1.0, -1.0])
  v = Top().init(jax.random.key(0), xs, x)
  assert v["params"]["VmapScale_0"]["s"].shape == (3, 2)
  s = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
  a, b = Top().apply({"params": {"VmapScale_0": {"s": s}}}, xs, x)
  np.testing.assert_allclose(a, xs * s, **TOL)  # mapped input: one row per slice
  np.testing.assert_allclose(b, 2 * x[None] * s, **TOL)  # broadcast input, 3 slices


def test_scan_methods_dict_overrides_length_per_method():
  class Step(nn.Module):
    def setup(self):
      self.w = self.param("w", nn.initializers.normal(1.0), (2, 2))

    def up(self, c):
      return jnp.tanh(c @ self.w), c

    def __call__(self, c, x):
      return jnp.tanh(c @ self.w + x), None

  SStep = nn.scan(Step, variable_broadcast="params", split_rngs={"params": False},
                  methods={"up": {"length": 4, "in_axes": ()}, "__call__": {}})

  class Top(nn.Module):
    @nn.compact
    def __call__(self, c, xs):
      m = SStep()
      c, hist = m.up(c)
      c, _ = m(c, xs)
      return c, hist

  c0, xs = jnp.array([0.5, -0.5]), jnp.ones((3, 2))
  v = Top().init(jax.random.key(0), c0, xs)
  w = v["params"]["ScanStep_0"]["w"]
  c, hist = Top().apply(v, c0, xs)
  ref, ref_hist = c0, []
  for _ in range(4):
    ref_hist.append(ref)
    ref = jnp.tanh(ref @ w)
  for x in xs:
    ref = jnp.tanh(ref @ w + x)
  np.testing.assert_allclose(c, ref, **TOL)
  np.testing.assert_allclose(hist, jnp.stack(ref_hist), **TOL)


@pytest.mark.parametrize("transform", [nn.jit, nn.remat])
def test_jit_and_remat_methods_dict_static_argnums_per_method(transform):
  class Pow(nn.Module):
    def setup(self):
      self.s = self.param("s", nn.initializers.constant(0.5), (2,))

    def __call__(self, x):
      return x * self.s

    def power(self, x, n):
      for _ in range(n):  # n must be a Python int: static for this method only
        x = x * self.s
      return x

  Lifted = transform(Pow, methods={"__call__": {}, "power": {"static_argnums": (2,)}})

  class Top(nn.Module):
    @nn.compact
    def __call__(self, x):
      m = Lifted()
      return m(x), m.power(x, 3)

  x = jnp.array([1.0, 2.0])
  v = Top().init(jax.random.key(0), x)
  a, b = Top().apply(v, x)
  np.testing.assert_allclose(a, x * 0.5, **TOL)
  np.testing.assert_allclose(b, x * 0.125, **TOL)
