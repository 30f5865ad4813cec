"""The fp8 ops (excluded from the gradient table in num_cases.py, since their "gradients" of
the scales and amax histories are the new values, not derivatives): the forward pass and the
straight-through gradients against ml_dtypes' fp8 rounding, the delayed scale of the second
step, and jit against eager.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from num_cases import assert_trees_close, normal

import flaxen.linen as nn

DIMS = (((1,), (0,)), ((), ()))
OPS = {
  "Fp8DotGeneral": (nn.Fp8DotGeneral, jnp.float8_e4m3fn, jnp.float8_e5m2),
  "Fp8DotGeneralOp": (nn.Fp8DotGeneralOp, jnp.float8_e4m3fn, jnp.float8_e5m2),
  "NANOOFp8DotGeneralOp": (nn.NANOOFp8DotGeneralOp, jnp.float8_e4m3fnuz, jnp.float8_e5m2fnuz),
  "Fp8Einsum": (nn.Fp8Einsum, jnp.float8_e4m3fn, jnp.float8_e5m2),
}


def _q(v, dtype, scale=1.0):
  """Reference quantize-dequantize: ``v / scale`` rounded by ml_dtypes (NumPy), no JAX op."""
  v = np.asarray(v, np.float32)
  return (v / scale).astype(dtype).astype(np.float32) * np.float32(scale)


def _call(name, op):
  if name == "Fp8Einsum":
    return lambda v, x, k: op.apply(v, "ab,bc->ac", x, k)
  return lambda v, x, k: op.apply(v, x, k, DIMS)


def _step(call, weights):
  """``(output, grads wrt (x, k, scales and histories))`` of ``sum(weights * y)``."""
  def loss(owg, x, k):
    y = call({"_overwrite_with_gradient": owg}, x, k)
    return jnp.sum(y * weights), y
  grad = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)

  def step(owg, x, k):
    grads, y = grad(owg, x, k)
    return (*grads, y)

  return step


@pytest.mark.filterwarnings("ignore:Fp8DotGeneralOp is deprecated")
@pytest.mark.parametrize("name", list(OPS))
def test_fp8_op_against_ml_dtypes_rounding(name):
  cls, e4m3, e5m2 = OPS[name]
  op = cls(amax_history_length=4)
  x, k, w = normal((2, 4), jnp.float32), normal((4, 3), jnp.float32, seed=1), normal(
    (2, 3), jnp.float32, seed=2)
  args = ("ab,bc->ac", x, k) if name == "Fp8Einsum" else (x, k, DIMS)
  owg = op.init(jax.random.key(0), *args)["_overwrite_with_gradient"]
  step = _step(_call(name, op), w)
  g_owg, g_x, g_k, y = step(owg, x, k)

  # First step: the histories are zero, so every scale is 1. The matmul sums 4 products of
  # exactly representable values, so float32 rounding (~1e-7 relative) is all that differs.
  xq, kq, wq = _q(x, e4m3), _q(k, e4m3), _q(w, e5m2)
  np.testing.assert_allclose(y, xq @ kq, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(g_x, wq @ kq.T, rtol=1e-6, atol=1e-6)  # straight through
  np.testing.assert_allclose(g_k, xq.T @ wq, rtol=1e-6, atol=1e-6)
  for part, v in (("input", x), ("kernel", k), ("output_grad", w)):
    np.testing.assert_array_equal(g_owg[f"{part}_amax_history"],
                                  np.array([np.abs(v).max(), 0, 0, 0], np.float32))
    np.testing.assert_array_equal(g_owg[f"{part}_scale"], np.ones((1,), np.float32))

  # Second step, the gradients overwriting the state: each scale maps last step's amax to
  # the fp8 type's largest value (delayed scaling).
  g_owg2, g_x2, _, y2 = step(g_owg, x, k)
  sx, sk, sw = (np.abs(v).max() / float(jnp.finfo(t).max) for v, t in
                ((x, e4m3), (k, e4m3), (w, e5m2)))
  np.testing.assert_allclose(g_owg2["input_scale"], [sx], rtol=1e-6)
  xq, kq, wq = _q(x, e4m3, sx), _q(k, e4m3, sk), _q(w, e5m2, sw)
  np.testing.assert_allclose(y2, xq @ kq, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(g_x2, wq @ kq.T, rtol=1e-6, atol=1e-6)

  # jit: the same ops in float32; 1e-6 allows for a reordered 4-term sum.
  assert_trees_close(jax.jit(step)(g_owg, x, k), step(g_owg, x, k), 1e-6)
