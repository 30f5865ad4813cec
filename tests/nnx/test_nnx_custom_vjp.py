"""nnx.custom_vjp against hand-computed gradients and jax.custom_vjp."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import nnx
from flaxen.errors import nnx as errors

X = jnp.array([[1.0, -2.0], [0.5, 3.0]])
W_OUT = jnp.array([[1.0, -1.0, 2.0], [0.5, 3.0, -4.0]])  # dL/dy of L = sum(y * W_OUT)


def _model():
  return nnx.Linear(2, 3, rngs=nnx.Rngs(0))


def _expected(m, x, g=W_OUT):
  """The custom rule by hand: kernel grad halved, bias grad clipped, input grad doubled."""
  gk = 0.5 * (x.T @ g)
  gb = jnp.clip(g.sum(0), -1.0, 1.0)
  gx = 2.0 * (g @ m.kernel.value.T)
  return gk, gb, gx


def _linear_rule():
  @nnx.custom_vjp
  def apply(m, x):
    return m(x)

  def fwd(m, x):
    return apply(m, x), (m.kernel.value, x)

  def bwd(res, g):
    (m_updates_g, x_updates_g), out_g = g
    kernel, x = res
    m_g = jax.tree.map(lambda v: v, m_updates_g)
    m_g.kernel.value = 0.5 * (x.T @ out_g)
    m_g.bias.value = jnp.clip(out_g.sum(0), -1.0, 1.0)
    return m_g, 2.0 * (out_g @ kernel.T)

  apply.defvjp(fwd, bwd)
  return apply


def _loss(apply):
  return lambda m, x: jnp.sum(apply(m, x) * W_OUT)


def test_module_and_array_gradients_follow_the_custom_rule():
  apply, m = _linear_rule(), _model()
  np.testing.assert_allclose(apply(m, X), X @ m.kernel.value + m.bias.value, rtol=1e-6)
  gm, gx = nnx.grad(_loss(apply), argnums=(0, 1))(m, X)
  gk, gb, gx_ref = _expected(m, X)
  assert isinstance(gm, nnx.State) and isinstance(gm.kernel, nnx.Param)
  assert set(gm) == {"kernel", "bias"}
  np.testing.assert_allclose(gm.kernel.value, gk, rtol=1e-6)
  np.testing.assert_allclose(gm.bias.value, gb, rtol=1e-6)
  np.testing.assert_allclose(gx, gx_ref, rtol=1e-6)
  # not the plain gradient: the rule was used
  plain = nnx.grad(lambda m: jnp.sum(m(X) * W_OUT))(m)
  assert not np.allclose(plain.kernel.value, gm.kernel.value)


def test_input_updates_g_has_the_shape_of_the_cotangents():
  seen = {}

  @nnx.custom_vjp
  def f(m, x):
    return m(x)

  def bwd(res, g):
    input_updates_g, out_g = g
    seen["g"] = input_updates_g
    m_g = jax.tree.map(jnp.zeros_like, input_updates_g[0])
    return m_g, jnp.zeros_like(res)

  f.defvjp(lambda m, x: (f(m, x), x), bwd)
  nnx.grad(lambda m, x: f(m, x).sum())(_model(), X)
  m_updates_g, x_updates_g = seen["g"]
  assert isinstance(m_updates_g, nnx.State) and set(m_updates_g) == {"kernel", "bias"}
  assert m_updates_g.kernel.value.shape == (2, 3) and x_updates_g is None


def test_plain_arrays_match_jax_custom_vjp():
  @jax.custom_vjp
  def ref(x, y):
    return jnp.sin(x) * y

  ref.defvjp(lambda x, y: (ref(x, y), (jnp.cos(x), jnp.sin(x), y)),
             lambda res, g: (res[0] * g * res[2] * 3.0, res[1] * g))

  @nnx.custom_vjp
  def f(x, y):
    return jnp.sin(x) * y

  def bwd(res, g):
    updates_g, out_g = g
    assert updates_g == (None, None)
    cos_x, sin_x, y = res
    return cos_x * out_g * y * 3.0, sin_x * out_g

  f.defvjp(lambda x, y: (f(x, y), (jnp.cos(x), jnp.sin(x), y)), bwd)
  x, y = jnp.array([0.3, 1.2]), jnp.array([2.0, -1.0])
  np.testing.assert_allclose(f(x, y), ref(x, y))
  for loss_of in (lambda h: lambda x, y: jnp.sum(h(x, y) ** 2),):
    want = jax.grad(loss_of(ref), argnums=(0, 1))(x, y)
    got = jax.grad(loss_of(f), argnums=(0, 1))(x, y)
    got_nnx = nnx.grad(loss_of(f), argnums=(0, 1))(x, y)
    for w, g1, g2 in zip(want, got, got_nnx, strict=True):
      np.testing.assert_allclose(g1, w, rtol=1e-6)
      np.testing.assert_allclose(g2, w, rtol=1e-6)
  np.testing.assert_allclose(jax.jit(jax.grad(lambda x: f(x, y).sum()))(x),
                             jax.grad(lambda x: ref(x, y).sum())(x), rtol=1e-6)


def test_int_nondiff_argnums_go_first_to_bwd_and_get_no_cotangent():
  @nnx.custom_vjp(nondiff_argnums=(0,))
  def scaled(scale, m, x):
    return m(x) * scale

  def fwd(scale, m, x):
    return scaled(scale, m, x), (m.kernel.value, x)

  def bwd(scale, res, g):
    (m_updates_g, _), out_g = g
    kernel, x = res
    m_g = jax.tree.map(lambda v: v, m_updates_g)
    m_g.kernel.value = scale * (x.T @ out_g)
    m_g.bias.value = jnp.zeros_like(m_g.bias.value)
    return m_g, scale * (out_g @ kernel.T)

  scaled.defvjp(fwd, bwd)
  m = _model()
  gm, gx = nnx.grad(lambda m, x: jnp.sum(scaled(3.0, m, x) * W_OUT), argnums=(0, 1))(m, X)
  np.testing.assert_allclose(gm.kernel.value, 3.0 * X.T @ W_OUT, rtol=1e-6)
  np.testing.assert_allclose(gm.bias.value, jnp.zeros(3))
  np.testing.assert_allclose(gx, 3.0 * W_OUT @ m.kernel.value.T, rtol=1e-6)


def test_diff_state_chooses_the_differentiated_variables():
  kernel_only = nnx.PathContains("kernel")

  @nnx.custom_vjp(nondiff_argnums=(nnx.DiffState(0, kernel_only),))
  def f(m, x):
    return m(x)

  def bwd(res, g):
    (m_updates_g, _), out_g = g
    # As in Flax: the updates' cotangents cover every Variable; the returned State may keep
    # the entries that are not differentiated (they are dropped).
    assert set(m_updates_g) == {"kernel", "bias"}
    m_g = jax.tree.map(lambda v: v, m_updates_g)
    m_g.kernel.value = -(res.T @ out_g)
    return m_g, None

  f.defvjp(lambda m, x: (f(m, x), x), bwd)
  m = _model()
  grads = nnx.grad(lambda m: jnp.sum(f(m, X) * W_OUT),
                   argnums=nnx.DiffState(0, kernel_only))(m)
  assert set(grads) == {"kernel"}
  np.testing.assert_allclose(grads.kernel.value, -(X.T @ W_OUT), rtol=1e-6)
  # the input's cotangent was None: zero
  gx = nnx.grad(lambda x: jnp.sum(f(m, x)))(X)
  np.testing.assert_allclose(gx, jnp.zeros_like(X))


def test_inside_nnx_jit_and_jax_jit_of_split_merge():
  apply = _linear_rule()
  m = _model()
  gk, gb, gx_ref = _expected(m, X)
  k0, b0 = m.kernel.value, m.bias.value

  @nnx.jit
  def step(m, x):
    gm, gx = nnx.grad(_loss(apply), argnums=(0, 1))(m, x)
    nnx.update(m, jax.tree.map(lambda p, g: p - 0.1 * g, nnx.state(m, nnx.Param), gm))
    return gx

  gx = step(m, X)
  np.testing.assert_allclose(gx, gx_ref, rtol=1e-6)
  np.testing.assert_allclose(m.kernel.value, k0 - 0.1 * gk, rtol=1e-6)
  np.testing.assert_allclose(m.bias.value, b0 - 0.1 * gb, rtol=1e-6)

  m2 = _model()
  graphdef, params = nnx.split(m2)

  @jax.jit
  def pure_step(params, x):
    def loss(params):
      return _loss(apply)(nnx.merge(graphdef, params), x)
    return jax.grad(loss)(params)

  grads = pure_step(params, X)
  np.testing.assert_allclose(grads["kernel"].value, gk, rtol=1e-6)
  np.testing.assert_allclose(grads["bias"].value, gb, rtol=1e-6)


class Count(nnx.Variable):
  pass


class Counted(nnx.Module):
  def __init__(self):
    self.linear = _model()
    self.calls = Count(jnp.array(0))

  def __call__(self, x):
    self.calls.value += 1
    return self.linear(x)


def test_state_updates_made_by_fun_are_applied():
  @nnx.custom_vjp
  def f(m, x):
    return m(x)

  def bwd(res, g):
    (m_updates_g, _), out_g = g
    assert set(m_updates_g) == {"linear", "calls"}  # every Variable, as in Flax
    m_g = jax.tree.map(lambda v: v, m_updates_g)
    m_g.linear.kernel.value = res.T @ out_g
    m_g.linear.bias.value = out_g.sum(0)
    return m_g, None

  f.defvjp(lambda m, x: (f(m, x), x), bwd)
  m = Counted()
  f(m, X)
  assert int(m.calls.value) == 1
  grads = nnx.grad(lambda m: jnp.sum(f(m, X) * W_OUT))(m)
  assert int(m.calls.value) == 2
  assert set(grads.linear) == {"kernel", "bias"} and "calls" not in grads
  np.testing.assert_allclose(grads.linear.kernel.value, X.T @ W_OUT, rtol=1e-6)

  @nnx.jit
  def step(m):
    return nnx.grad(lambda m: jnp.sum(f(m, X)))(m)

  step(m)
  step(m)
  assert int(m.calls.value) == 4


def _bad_rule(make_tangent):
  @nnx.custom_vjp
  def my_layer(m, x):
    return m(x)

  def bwd(res, g):
    (m_updates_g, _), out_g = g
    return make_tangent(m_updates_g, out_g)

  my_layer.defvjp(lambda m, x: (my_layer(m, x), x), bwd)
  return lambda m, x: jnp.sum(my_layer(m, x))


def test_wrong_cotangent_structure_raises_a_clear_error():
  m = _model()

  def missing_bias(m_g, out_g):
    s = jax.tree.map(lambda v: v, m_g)
    del s["bias"]
    return s, None

  with pytest.raises(errors.CustomVjpTangentError, match="argument 0") as e:
    nnx.grad(_bad_rule(missing_bias))(m, X)
  assert "bias" in str(e.value) and "my_layer" in str(e.value) and e.value.argnum == 0

  with pytest.raises(errors.CustomVjpTangentError, match="tuple of 2"):
    nnx.grad(_bad_rule(lambda m_g, out_g: (m_g,)))(m, X)

  with pytest.raises(errors.CustomVjpTangentError, match="expected a State"):
    nnx.grad(_bad_rule(lambda m_g, out_g: (jnp.zeros((2, 3)), None)))(m, X)

  with pytest.raises(errors.CustomVjpTangentError, match="argument 1.*shape"):
    nnx.grad(_bad_rule(lambda m_g, out_g: (m_g, jnp.zeros(3))), argnums=(0, 1))(m, X)

  def wrong_shape(m_g, out_g):
    s = jax.tree.map(lambda v: v, m_g)
    s.kernel.value = jnp.zeros((3, 2))
    return s, None

  with pytest.raises(errors.CustomVjpTangentError, match="kernel.*shape"):
    nnx.grad(_bad_rule(wrong_shape))(m, X)


def test_setup_errors():
  with pytest.raises(errors.CustomVjpError, match="holds graph objects"):
    f = nnx.custom_vjp(lambda m: m(X), nondiff_argnums=(0,))
    f.defvjp(lambda m: (m(X), None), lambda m, res, g: ())
    f(_model())
  with pytest.raises(errors.CustomVjpError, match="twice"):
    nnx.custom_vjp(lambda m: m, nondiff_argnums=(0, nnx.DiffState(0, ...)))
  with pytest.raises(errors.CustomVjpError, match="defvjp"):
    nnx.custom_vjp(lambda x: x)(1.0)
