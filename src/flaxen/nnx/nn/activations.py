"""Activation functions under Flax's names (``nnx.relu``, ``nnx.gelu``...): the shared
:mod:`flaxen.ops.activations`; and the ``PReLU`` layer.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> nnx.PReLU(0.5)(jnp.array([-2., 3.])).tolist()
[-1.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from flaxen.nnx.module import Module
from flaxen.nnx.nn.defaults import NO_METADATA, rule_of
from flaxen.nnx.nn.dtypes import promote_dtype as default_promote_dtype
from flaxen.nnx.variables import Param
from flaxen.ops.activations import *  # noqa: F403
from flaxen.ops.activations import __all__ as _activations
from flaxen.ops.prelu import prelu
from flaxen.typing import Array, Dtype, PromoteDtypeFn

__all__ = [*_activations, "PReLU"]


class PReLU(Module):
  """A leaky ReLU whose negative slope is a learned scalar Param ``negative_slope``.

  Args:
    negative_slope_init: the slope's initial value.
    dtype: the computation dtype; ``None`` casts the slope to the inputs' dtype.
    param_dtype: the slope's dtype.
    promote_dtype: the promotion rule used when ``dtype`` is given, called as
      ``promote_dtype((inputs, negative_slope), dtype=dtype)``.
    negative_slope_metadata: metadata of the slope's Param.
  """

  def __init__(self, negative_slope_init: float = 0.01, *, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32,
               promote_dtype: PromoteDtypeFn = default_promote_dtype,
               negative_slope_metadata: Mapping[str, Any] = NO_METADATA):
    self.negative_slope = Param(jnp.asarray(negative_slope_init, param_dtype),
                                **negative_slope_metadata)
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.promote_dtype = promote_dtype

  def __call__(self, inputs: Array) -> Array:
    return prelu(inputs, self.negative_slope.value, dtype=self.dtype,
                 promote_rule=rule_of(self.promote_dtype))
