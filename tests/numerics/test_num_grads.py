"""Every layer and layer function in float64: outputs and gradients (wrt params and float
inputs) are the same with and without ``jax.jit``, and the gradients match finite
differences (``jax.test_util.check_grads`` in reverse mode; the slow tier adds forward mode
and second order).

One build serves both checks, and check_grads reuses the eager ops the first check compiled.
test_num_jit.py repeats the jit check in float32 (slow tier).
"""

import jax
import jax.numpy as jnp
import pytest
from jax.test_util import check_grads
from num_cases import (
  FUNCTIONS,
  LINEN,
  NNX,
  assert_nonzero_grads,
  assert_trees_close,
  grads_and_output,
  parametrize_cases,
)

TABLES = {"linen": LINEN, "nnx": NNX, "fn": FUNCTIONS}


@pytest.fixture
def x64():
  """float64 for this test only: ``jax.enable_x64`` is a context manager, so the setting is
  restored for the other tests of this process (pytest-xdist workers run many files)."""
  with jax.enable_x64(True):
    yield
  assert not jax.config.x64_enabled


@parametrize_cases(TABLES)
def test_jit_and_finite_differences(x64, api, name):
  fn, args = TABLES[api][name](jnp.float64)
  assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(args))
  step = grads_and_output(fn, len(args))
  eager = step(*args)
  assert_trees_close(jax.jit(step)(*args), eager, 1e-12)
  assert_nonzero_grads(eager[0])
  check_grads(fn, args, order=1, modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)


# sigma's gradient stops at the power iteration's u and v (as in Flax): first derivatives
# are exact once they converge, second derivatives lack the du/dW and dv/dW terms.
NO_SECOND_ORDER = {"linen:SpectralNorm", "nnx:SpectralNorm"}


@parametrize_cases(TABLES, all_slow=True)
def test_second_order_finite_differences(x64, api, name):
  if f"{api}:{name}" in NO_SECOND_ORDER:
    pytest.skip("stop_gradient on the power iteration: no exact second derivative")
  fn, args = TABLES[api][name](jnp.float64)
  check_grads(fn, args, order=2, modes=("fwd", "rev"), eps=1e-5, atol=1e-5, rtol=1e-5)
