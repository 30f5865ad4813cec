"""Every layer and layer function gives the same outputs and gradients (wrt params and
float inputs) with and without ``jax.jit``, in float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from num_cases import FUNCTIONS, LINEN, NNX, normal

TABLES = {"linen": LINEN, "nnx": NNX, "fn": FUNCTIONS}
CASES = [(api, name) for api, table in TABLES.items() for name in table]


def grads_and_output(fn, n_args):
  """``(grads wrt every arg, output)`` of ``fn``; the loss weights each output element by a
  fixed normal, so errors that a plain sum would cancel (e.g. in softmax) show."""

  def loss(*args):
    out = fn(*args)
    return sum(jnp.sum(leaf * normal(leaf.shape, leaf.dtype, seed=7 + i))
               for i, leaf in enumerate(jax.tree.leaves(out))), out

  return jax.grad(loss, argnums=tuple(range(n_args)), has_aux=True)


def assert_trees_close(actual, expected, tol):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
    assert a.dtype == e.dtype and a.shape == e.shape
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=tol, atol=tol)


@pytest.mark.parametrize(("api", "name"), CASES, ids=[f"{a}:{n}" for a, n in CASES])
def test_jit_matches_eager(api, name):
  fn, args = TABLES[api][name](jnp.float32)
  step = grads_and_output(fn, len(args))
  eager, jitted = step(*args), jax.jit(step)(*args)
  assert_trees_close(jitted, eager, 1e-6)
  # Not trivially equal: every param tree and input gets a nonzero gradient.
  for arg_grads in eager[0]:
    leaves = jax.tree.leaves(arg_grads)
    assert not leaves or any(np.any(np.asarray(g) != 0) for g in leaves)
