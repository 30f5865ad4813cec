"""Linear layers of NNX.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> layer = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
>>> layer(jnp.ones((4, 2))).shape
(4, 3)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from flaxen import initializers
from flaxen.nnx.module import Module
from flaxen.nnx.rnglib import Rngs
from flaxen.nnx.variables import Param
from flaxen.ops.dtypes import promote_dtype
from flaxen.typing import Dtype, Initializer, PrecisionLike

__all__ = ["Linear"]

default_kernel_init = initializers.lecun_normal()
default_bias_init = initializers.zeros_init()


class Linear(Module):
  """``y = x @ kernel + bias`` over the last axis of ``x``.

  Args:
    in_features: size of the input's last axis.
    out_features: size of the output's last axis.
    use_bias: whether to add a bias.
    dtype: the computation dtype (``None``: the promoted dtype of inputs and params).
    param_dtype: the dtype params are created in.
    precision: precision of the matmul.
    kernel_init: initializer of the ``(in_features, out_features)`` kernel.
    bias_init: initializer of the ``(out_features,)`` bias.
    rngs: random streams; keys are drawn from ``rngs.params()``.
  """

  def __init__(self, in_features: int, out_features: int, *, use_bias: bool = True,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               precision: PrecisionLike = None, kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = default_bias_init, rngs: Rngs):
    self.kernel = Param(kernel_init(rngs.params(), (in_features, out_features), param_dtype))
    self.bias = (Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias
                 else None)
    self.in_features = in_features
    self.out_features = out_features
    self.use_bias = use_bias
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.precision = precision

  def __call__(self, inputs: jax.Array) -> jax.Array:
    bias = self.bias.value if self.bias is not None else None
    x, kernel, bias = promote_dtype(inputs, self.kernel.value, bias, dtype=self.dtype)
    y = lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())),
                        precision=self.precision)
    return y if bias is None else y + bias

