"""PReLU: a leaky ReLU whose negative slope is a learned scalar.

>>> import jax.numpy as jnp
>>> prelu(jnp.array([-2., 3.]), jnp.array(0.5)).tolist()
[-1.0, 3.0]
"""

from __future__ import annotations

import jax.numpy as jnp

from flaxen.ops.dtypes import PromoteFn, promote
from flaxen.typing import Array, Dtype

__all__ = ["prelu"]


def prelu(inputs: Array, negative_slope: Array, *, dtype: Dtype | None = None,
          promote_rule: PromoteFn | None = None) -> Array:
  """``inputs`` where they are ``>= 0``, else ``negative_slope * inputs``.

  With ``dtype=None`` the slope is cast to the inputs' dtype (so a float32 slope keeps
  bfloat16 activations in bfloat16); with a ``dtype``, inputs and slope are promoted to it
  by ``promote_rule`` (see :func:`flaxen.ops.dtypes.promote`).
  """
  inputs = jnp.asarray(inputs)
  if dtype is None:
    negative_slope = jnp.asarray(negative_slope, inputs.dtype)
  else:
    inputs, negative_slope = promote((inputs, negative_slope), dtype=dtype, rule=promote_rule)
  return jnp.where(inputs >= 0, inputs, negative_slope * inputs)
