"""Gradients of every layer and layer function against finite differences
(``jax.test_util.check_grads``, forward and reverse mode) in float64."""

import jax
import jax.numpy as jnp
import pytest
from jax.test_util import check_grads
from num_cases import FUNCTIONS, LINEN, NNX

TABLES = {"linen": LINEN, "nnx": NNX, "fn": FUNCTIONS}
CASES = [(api, name) for api, table in TABLES.items() for name in table]


@pytest.fixture
def x64():
  """float64 for this test only: ``jax.enable_x64`` is a context manager, so the setting is
  restored for the other tests of this process (pytest-xdist workers run many files)."""
  with jax.enable_x64(True):
    yield
  assert not jax.config.x64_enabled


@pytest.mark.parametrize(("api", "name"), CASES, ids=[f"{a}:{n}" for a, n in CASES])
def test_grads_match_finite_differences(x64, api, name):
  fn, args = TABLES[api][name](jnp.float64)
  assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(args))
  check_grads(fn, args, order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-6, rtol=1e-6)
