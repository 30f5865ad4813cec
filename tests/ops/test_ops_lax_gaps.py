"""ops._lax helpers on the inputs the layer tests do not reach: jnp.mean's rules for integer
and weakly typed arrays, and inline_jit with unhashable static arguments."""

import jax.numpy as jnp
import numpy as np

from flaxen.ops import _lax


def test_mean_over_follows_jnp_mean_for_integer_and_weak_inputs():
  ints = jnp.arange(12, dtype=jnp.int32).reshape(3, 4)
  got = _lax.mean_over(ints, (1,))
  assert got.dtype == jnp.mean(ints, (1,)).dtype
  np.testing.assert_allclose(got, np.arange(12).reshape(3, 4).mean(1))
  weak = jnp.asarray(2.0) * jnp.ones(())  # weakly typed scalar
  assert _lax.mean_over(weak, ()) == 2.0


def test_inline_jit_calls_the_function_itself_for_unhashable_static_arguments():
  traces = []

  @_lax.inline_jit("axes")
  def total(x, *, axes):
    traces.append(axes)
    return jnp.sum(x, axis=tuple(axes))

  x = jnp.ones((2, 3))
  for _ in range(2):
    np.testing.assert_allclose(total(x, axes=(1,)), [3.0, 3.0])
  assert traces == [(1,)]  # hashable: traced once, then the compiled function
  for _ in range(2):
    np.testing.assert_allclose(total(x, axes=[0]), [2.0, 2.0, 2.0])
  assert traces == [(1,), [0], [0]]  # a list is unhashable: run eagerly every call
