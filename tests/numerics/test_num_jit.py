"""Every layer and layer function gives the same outputs and gradients (wrt params and
float inputs) with and without ``jax.jit``, in float32 (slow tier: test_num_grads.py runs
the same check in float64 with the finite-difference check, in the fast tier)."""

import jax
import jax.numpy as jnp
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


@parametrize_cases(TABLES, all_slow=True)
def test_jit_matches_eager(api, name):
  fn, args = TABLES[api][name](jnp.float32)
  step = grads_and_output(fn, len(args))
  eager, jitted = step(*args), jax.jit(step)(*args)
  # float32 rounding differs between fused (jit) and op-by-op kernels by a few ulps of the
  # O(1) intermediates: MultiHeadAttention's gradients differ by 1.7e-6 (softmax), so 1e-5.
  assert_trees_close(jitted, eager, 1e-5)
  assert_nonzero_grads(eager[0])
