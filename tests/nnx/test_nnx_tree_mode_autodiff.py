"""nnx.grad / value_and_grad / vjp / jvp / custom_vjp / eval_shape / checkify / make_jaxpr
without graph updates, against jax.grad / jax.vjp / jax.jvp of the same math on arrays."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify as jax_checkify

from flaxen import errors, nnx

MODES = [(False, False), (True, False)]
X = jnp.array([[1.0, -2.0], [0.5, 3.0]])


@dataclasses.dataclass
class Affine(nnx.Module):
  w: nnx.Param
  b: nnx.BatchStat  # not a Param: differentiated too without graph updates
  calls: nnx.Variable


def _affine() -> Affine:
  return Affine(nnx.Param(jnp.array([[1.0, 2.0], [3.0, 4.0]])), nnx.BatchStat(jnp.ones(2)),
                nnx.Variable(jnp.array(0.0)))


def _loss(w, b, x):
  return jnp.sum(jnp.tanh(x @ w + b) ** 2)


def _call(m, x):
  m.calls[...] += 1.0
  return _loss(m.w[...], m.b[...], x)


@pytest.mark.parametrize("graph,updates", MODES)
def test_grad_is_the_model_type_with_every_variable_differentiated(graph, updates):
  m = _affine()
  (value, aux), grads = nnx.value_and_grad(
    lambda m, x: (_call(m, x), {"n": 1}), has_aux=True, graph=graph,
    graph_updates=updates)(m, X)
  ref_w, ref_b = jax.grad(_loss, argnums=(0, 1))(m.w[...], m.b[...], X)
  assert type(grads) is Affine and isinstance(grads.b, nnx.BatchStat)
  np.testing.assert_allclose(grads.w[...], ref_w, rtol=1e-6)
  np.testing.assert_allclose(grads.b[...], ref_b, rtol=1e-6)
  np.testing.assert_allclose(value, _loss(m.w[...], m.b[...], X), rtol=1e-6)
  assert aux == {"n": 1} and float(m.calls[...]) == 1.0  # the update came back


def test_graph_mode_keeps_shared_variables_shared():
  p = nnx.Param(jnp.array(2.0))
  m = nnx.Dict(a=nnx.List([p]), b=p)
  grads = nnx.grad(lambda m: m.a[0][...] * m.b[...], graph=True, graph_updates=False)(m)
  assert grads.a[0] is grads.b and float(grads.b[...]) == 4.0  # d(p^2)/dp, one gradient
  with pytest.raises(errors.DuplicateVariableError):
    nnx.grad(lambda m: 0.0, graph=False)(m)


def test_inconsistent_aliasing_and_prefix_filters_raise():
  v = nnx.Param(jnp.array(1.0))
  with pytest.raises(errors.InconsistentAliasingError, match="Inconsistent aliasing"):
    nnx.grad(lambda a, b: a[...] * b[...], graph=True, graph_updates=False)(v, v)
  with pytest.raises(errors.PrefixFilterError, match="cannot contain `DiffState`"):
    nnx.grad(lambda m: 0.0, argnums=nnx.DiffState(0, nnx.Param), graph=False)
  kernel_only = nnx.DiffState(0, nnx.PathContains("kernel"))
  assert kernel_only.map_prefix(("kernel",), v) and not kernel_only.map_prefix(("bias",), v)


@pytest.mark.parametrize("graph,updates", MODES)
def test_vjp_and_jvp_match_jax(graph, updates):
  m = _affine()
  out, pullback = nnx.vjp(_call, m, X, graph=graph, graph_updates=updates)
  ref_out, ref_pullback = jax.vjp(_loss, m.w[...], m.b[...], X)
  g_m, g_x = pullback(jnp.array(1.0))
  ref_w, ref_b, ref_x = ref_pullback(jnp.array(1.0))
  np.testing.assert_allclose(out, ref_out, rtol=1e-6)
  np.testing.assert_allclose(g_m.w[...], ref_w, rtol=1e-6)
  np.testing.assert_allclose(g_m.b[...], ref_b, rtol=1e-6)
  np.testing.assert_allclose(g_x, ref_x, rtol=1e-6)
  assert float(m.calls[...]) == 1.0

  tangent = jax.tree.map(jnp.ones_like, m)
  out, t_out = nnx.jvp(_call, (m, X), (tangent, jnp.zeros_like(X)),
                       graph=graph, graph_updates=updates)
  ref = jax.jvp(_loss, (m.w[...], m.b[...], X),
                (jnp.ones((2, 2)), jnp.ones(2), jnp.zeros_like(X)))
  np.testing.assert_allclose(t_out, ref[1], rtol=1e-6)
  assert float(m.calls[...]) == 2.0


@pytest.mark.parametrize("graph,updates", MODES)
def test_custom_vjp_rule_in_the_arguments_type(graph, updates):
  @nnx.custom_vjp(graph=graph, graph_updates=updates)
  def f(m, x):
    return _loss(m.w[...], m.b[...], x)

  def fwd(m, x):
    return f(m, x), (m, x)

  def bwd(res, g):
    m, x = res
    gw, gb, gx = jax.grad(_loss, argnums=(0, 1, 2))(m.w[...], m.b[...], x)
    m_g = nnx.clone(m)
    m_g.w[...] = 2.0 * g * gw  # a rule that differs from autodiff: doubled
    m_g.b[...] = g * gb
    m_g.calls[...] = jnp.zeros(())
    return m_g, g * gx

  f.defvjp(fwd, bwd)
  m = _affine()
  g_m, g_x = nnx.grad(f, argnums=(0, 1), graph=graph, graph_updates=updates)(m, X)
  ref_w, ref_b, ref_x = jax.grad(_loss, argnums=(0, 1, 2))(m.w[...], m.b[...], X)
  np.testing.assert_allclose(g_m.w[...], 2.0 * ref_w, rtol=1e-6)
  np.testing.assert_allclose(g_m.b[...], ref_b, rtol=1e-6)
  np.testing.assert_allclose(g_x, ref_x, rtol=1e-6)


def test_custom_vjp_passes_update_cotangents_and_writes_updates_back():
  seen = {}

  @nnx.custom_vjp(graph=False)
  def f(m):
    m.calls[...] += 1.0
    return jnp.sum(m.w[...])

  def bwd(res, g, updates_g):
    (m_up,) = updates_g
    seen["up"] = (m_up.w is None, isinstance(m_up.calls, nnx.Variable))
    m_g = nnx.clone(res)
    m_g.w[...] = g * jnp.ones((2, 2))
    m_g.b[...] = jnp.zeros(2)
    m_g.calls[...] = jnp.zeros(())
    return (m_g,)

  f.defvjp(lambda m: (f(m), m), bwd)
  m = _affine()
  grads = nnx.grad(f, graph=False)(m)
  np.testing.assert_allclose(grads.w[...], jnp.ones((2, 2)))
  assert seen["up"] == (True, True) and float(m.calls[...]) == 1.0


@pytest.mark.parametrize("graph,updates", MODES)
def test_eval_shape_checkify_make_jaxpr(graph, updates):
  m = _affine()
  out = nnx.eval_shape(_call, m, X, graph=graph, graph_updates=updates)
  assert out.shape == () and float(m.calls[...]) == 0.0  # nothing is written back
  with pytest.raises(errors.VariableAliasingError):
    nnx.eval_shape(lambda m: m.w, m, graph=graph, graph_updates=updates)

  m.w[...] = jnp.full((2, 2), jnp.inf)
  err, value = nnx.checkify(_call, errors=jax_checkify.float_checks, graph=graph,
                            graph_updates=updates)(m, X)
  assert err.get() is not None and float(m.calls[...]) == 1.0

  jaxpr = nnx.make_jaxpr(_call, graph=graph, graph_updates=updates)(m, X)
  assert len(jaxpr.jaxpr.invars) == 4  # w, b, calls and x
  assert len(jaxpr.jaxpr.outvars) == 2  # the loss and the new `calls`
  assert float(m.calls[...]) == 1.0
  with pytest.raises(errors.GraphUpdatesUnsupportedError):
    nnx.make_jaxpr(_call, graph=True, graph_updates=True)


@pytest.mark.parametrize("graph", [True, False])
def test_custom_vjp_over_remat_sees_no_update_when_none_is_made(graph):
  # remat returns only the Variables it replaced, so custom_vjp's bwd gets no updates_g
  @nnx.custom_vjp(graph=graph, graph_updates=False)
  @nnx.remat(graph=graph, graph_updates=False)
  def f(m):
    return jnp.sum(jnp.sin(m.w[...]))

  def bwd(res, g):  # two arguments: no Variable was updated
    m_g = nnx.clone(res)
    m_g.w[...] = g * jnp.cos(res.w[...])
    m_g.b[...] = jnp.zeros(2)
    m_g.calls[...] = jnp.zeros(())
    return (m_g,)

  f.defvjp(lambda m: (f(m), m), bwd)
  m = _affine()
  grads = nnx.grad(f, graph=graph, graph_updates=False)(m)
  np.testing.assert_allclose(grads.w[...], jnp.cos(m.w[...]), rtol=1e-6)
