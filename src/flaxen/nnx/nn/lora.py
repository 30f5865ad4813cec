"""Low-rank adaptation (LoRA): a trainable ``in -> rank -> out`` bypass of a layer.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> layer = nnx.LoRALinear(3, 4, lora_rank=2, rngs=nnx.Rngs(0))
>>> y = layer(jnp.ones((1, 3)))   # lora_b starts at zero: the same output as the Linear
>>> layer.lora.lora_a.value.shape, type(layer.lora.lora_b).__name__
((3, 2), 'LoRAParam')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flaxen import initializers
from flaxen.nnx.module import Module
from flaxen.nnx.nn.defaults import NO_METADATA, rule_of
from flaxen.nnx.nn.dtypes import promote_dtype as default_promote_dtype
from flaxen.nnx.nn.linear import Linear
from flaxen.nnx.rnglib import Rngs
from flaxen.nnx.variables import Param
from flaxen.ops import linear as linear_ops
from flaxen.typing import Dtype, Initializer, PromoteDtypeFn

__all__ = ["LoRA", "LoRALinear", "LoRAParam"]

default_a_initializer = initializers.he_uniform()
default_b_initializer = initializers.zeros


class LoRAParam(Param):
  """The Param type of LoRA's factors, so they can be trained (or filtered) on their own."""


class LoRA(Module):
  """``x @ lora_a @ lora_b``, plus ``base_module(x)`` when one is given.

  Args:
    in_features: size of the input's last axis.
    lora_rank: the rank of the bypass.
    out_features: size of the output's last axis.
    base_module: a module (or function) whose output the bypass is added to.
    dtype: computation dtype (``None``: the promoted dtype of inputs and params).
    param_dtype: dtype of the factors.
    a_initializer: initializer of ``lora_a`` ``(in_features, lora_rank)``.
    b_initializer: initializer of ``lora_b`` ``(lora_rank, out_features)`` (zeros, so the
      bypass starts as a no-op).
    lora_param_type: the Variable type of the factors.
    promote_dtype: the ``promote_dtype`` rule of both products.
    rngs: random streams (``params``).
    a_metadata, b_metadata: metadata of the factors (e.g. ``sharding``).
  """

  def __init__(self, in_features: int, lora_rank: int, out_features: int, *,
               base_module: Callable[..., Any] | None = None, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32,
               a_initializer: Initializer = default_a_initializer,
               b_initializer: Initializer = default_b_initializer,
               lora_param_type: type[Param] = LoRAParam,
               promote_dtype: PromoteDtypeFn = default_promote_dtype, rngs: Rngs,
               a_metadata: Mapping[str, Any] = NO_METADATA,
               b_metadata: Mapping[str, Any] = NO_METADATA):
    self.promote_dtype = promote_dtype
    self.in_features = in_features
    self.out_features = out_features
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.lora_param_type = lora_param_type
    self.base_module = base_module
    self.lora_a = lora_param_type(a_initializer(rngs.params(), (in_features, lora_rank),
                                                param_dtype), **a_metadata)
    self.lora_b = lora_param_type(b_initializer(rngs.params(), (lora_rank, out_features),
                                                param_dtype), **b_metadata)

  def __call__(self, x: jax.Array, **kwargs: Any) -> jax.Array:
    """``x @ lora_a @ lora_b``, plus ``base_module(x, **kwargs)`` when there is one."""
    where = type(self).__name__
    rule = rule_of(self.promote_dtype)
    hidden = linear_ops.dense(x, self.lora_a.value, dtype=self.dtype, promote_rule=rule,
                              where=where)
    out = linear_ops.dense(hidden, self.lora_b.value, dtype=self.dtype, promote_rule=rule,
                           where=where)
    if self.base_module is not None:
      out = out + self.base_module(x, **kwargs)
    return out


class LoRALinear(Linear):
  """A :class:`Linear` with a :class:`LoRA` bypass (the submodule ``lora``).

  Args:
    in_features, out_features: as in :class:`Linear`.
    lora_rank: the rank of the bypass.
    lora_dtype, lora_param_dtype, lora_promote_dtype: ``dtype`` / ``param_dtype`` /
      ``promote_dtype`` of the bypass.
    a_initializer, b_initializer, lora_param_type, a_metadata, b_metadata: as in
      :class:`LoRA`.
    rngs: random streams (``params``).
    **kwargs: the other arguments of :class:`Linear`.
  """

  def __init__(self, in_features: int, out_features: int, *, lora_rank: int,
               lora_dtype: Dtype | None = None, lora_param_dtype: Dtype = jnp.float32,
               a_initializer: Initializer = default_a_initializer,
               b_initializer: Initializer = default_b_initializer,
               lora_param_type: type[Param] = LoRAParam,
               lora_promote_dtype: PromoteDtypeFn = default_promote_dtype, rngs: Rngs,
               a_metadata: Mapping[str, Any] = NO_METADATA,
               b_metadata: Mapping[str, Any] = NO_METADATA, **kwargs: Any):
    super().__init__(in_features, out_features, rngs=rngs, **kwargs)
    self.lora = LoRA(in_features, lora_rank, out_features, dtype=lora_dtype,
                     param_dtype=lora_param_dtype, a_initializer=a_initializer,
                     b_initializer=b_initializer, lora_param_type=lora_param_type,
                     promote_dtype=lora_promote_dtype, rngs=rngs,
                     a_metadata=a_metadata, b_metadata=b_metadata)

  def __call__(self, x: jax.Array, out_sharding: Any = None) -> jax.Array:
    return super().__call__(x, out_sharding=out_sharding) + self.lora(x)
