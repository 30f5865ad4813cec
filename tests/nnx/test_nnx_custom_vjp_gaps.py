"""nnx.custom_vjp paths the main tests leave out: argument checks and keyword calls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import nnx
from flaxen.errors import nnx as errors


def _scale_rule(**options):
  @nnx.custom_vjp(**options)
  def scale(x, k):
    return x * k

  scale.defvjp(lambda x, k: (x * k, k), lambda k, g: (3.0 * g[1], jnp.zeros_like(k)))
  return scale


def test_keyword_arguments_are_bound_positionally():
  @nnx.custom_vjp
  def scale(x, k):
    return x * k

  # bwd gets (residuals, (input updates, output cotangent))
  scale.defvjp(lambda x, k: (x * k, k), lambda k, g: (3.0 * g[1], jnp.zeros_like(k)))
  np.testing.assert_allclose(scale(2.0, k=4.0), 8.0)
  grad = jax.grad(lambda x: scale(x, k=4.0))(2.0)  # the rule's 3.0, not the true 4.0
  np.testing.assert_allclose(grad, 3.0)


def test_argument_checks():
  with pytest.raises(errors.CustomVjpError, match="not a non-negative"):
    nnx.custom_vjp(lambda x: x, nondiff_argnums=(-1,))
  with pytest.raises(errors.CustomVjpError, match="symbolic_zeros"):
    _scale_rule().defvjp(lambda x, k: (x, k), lambda k, g: (g, g), symbolic_zeros=True)

  @nnx.custom_vjp
  def keyword_only(x, *, k):
    return x * k

  keyword_only.defvjp(lambda x, *, k: (x * k, None), lambda r, g: (g,))
  with pytest.raises(errors.CustomVjpError, match=r"keyword-only arguments \['k'\]"):
    keyword_only(1.0, k=2.0)
  with pytest.raises(errors.CustomVjpError, match="names argument 2, but the function got 2"):
    _scale_rule(nondiff_argnums=(2,))(1.0, 2.0)
