"""Multi-head dot-product attention as Linen layers, with an autoregressive decode cache.

The math is :mod:`flaxen.ops.attention`, whose functions and mask helpers are re-exported
here (``nn.dot_product_attention``, ``nn.make_causal_mask``, ...).

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> layer = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8)
>>> x = jnp.ones((1, 3, 4))
>>> variables = layer.init(jax.random.key(0), x)
>>> layer.apply(variables, x).shape
(1, 3, 4)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from jax import lax

from flaxen import initializers
from flaxen.errors.layers import AttentionInputsError, DecodeCacheError, NumHeadsError
from flaxen.linen.linear import DenseGeneral, default_kernel_init
from flaxen.linen.module import Module, compact, merge_param
from flaxen.linen.normalization import LayerNorm
from flaxen.linen.param_checks import layer_name
from flaxen.ops.attention import (
  combine_masks,
  dot_product_attention,
  dot_product_attention_weights,
  make_attention_mask,
  make_causal_mask,
)
from flaxen.typing import Array, DotGeneralT, Dtype, Initializer, PrecisionLike, PRNGKey

__all__ = [
  "MultiHeadAttention", "MultiHeadDotProductAttention", "SelfAttention", "combine_masks",
  "dot_product_attention", "dot_product_attention_weights", "make_attention_mask",
  "make_causal_mask",
]


class MultiHeadDotProductAttention(Module):
  """Projects inputs to per-head queries, keys and values, attends, and projects back.

  Params: submodules ``query``, ``key``, ``value`` (kernels ``(in, heads, head_dim)``) and
  ``out`` (kernel ``(heads, head_dim, out_features)``), each with a bias when ``use_bias``.

  Attributes:
    num_heads: number of heads; must divide ``qkv_features``.
    dtype: computation dtype (default: inferred from inputs and params).
    param_dtype: dtype of the params.
    qkv_features: total size of queries/keys/values (default: the query inputs' features).
    out_features: output size (default: the query inputs' features).
    broadcast_dropout: share the attention dropout mask across batch and heads.
    dropout_rate: dropout rate of the attention weights.
    deterministic: disable dropout (may be given to ``__call__``).
    precision: ``lax`` precision of projections and attention.
    kernel_init, bias_init: initializers of the projections.
    out_kernel_init, out_bias_init: of the output projection (default: the above).
    use_bias: whether the projections have biases.
    attention_fn: ``dot_product_attention`` or a function with its signature.
    decode: autoregressive decoding with a ``cache`` collection: init with a full-length
      input to size the cache, then apply one position at a time with ``mutable=['cache']``.
    normalize_qk: apply a LayerNorm (without bias) to queries and keys.
    force_fp32_for_softmax: softmax in float32 for half-precision dtypes.
    qkv_dot_general, out_dot_general: replace ``lax.dot_general`` in the projections.
    qkv_dot_general_cls, out_dot_general_cls: classes whose instances replace it.
    qk_attn_weights_einsum_cls, attn_weights_value_einsum_cls: classes (e.g.
      :class:`flaxen.linen.Fp8Einsum`) whose instances replace the two einsums of the
      attention; given together, made on every call.
  """

  num_heads: int
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  qkv_features: int | None = None
  out_features: int | None = None
  broadcast_dropout: bool = True
  dropout_rate: float = 0.0
  deterministic: bool | None = None
  precision: PrecisionLike = None
  kernel_init: Initializer = default_kernel_init
  out_kernel_init: Initializer | None = None
  bias_init: Initializer = initializers.zeros_init()
  out_bias_init: Initializer | None = None
  use_bias: bool = True
  attention_fn: Callable[..., Array] = dot_product_attention
  decode: bool = False
  normalize_qk: bool = False
  force_fp32_for_softmax: bool = False
  qkv_dot_general: DotGeneralT | None = None
  out_dot_general: DotGeneralT | None = None
  qkv_dot_general_cls: Any = None
  out_dot_general_cls: Any = None
  qk_attn_weights_einsum_cls: Callable[..., Callable[..., Array]] | None = None
  attn_weights_value_einsum_cls: Callable[..., Callable[..., Array]] | None = None

  @compact
  def __call__(
    self,
    inputs_q: Array,
    inputs_k: Array | None = None,
    inputs_v: Array | None = None,
    *,
    inputs_kv: Array | None = None,
    mask: Array | None = None,
    deterministic: bool | None = None,
    dropout_rng: PRNGKey | None = None,
    sow_weights: bool = False,
  ) -> Array:
    """Attends from ``inputs_q`` to ``inputs_k`` / ``inputs_v``.

    Args:
      inputs_q: ``(*batch, q_len, features)``.
      inputs_k: ``(*batch, kv_len, features)``; defaults to ``inputs_q`` (self-attention).
      inputs_v: defaults to ``inputs_k``.
      inputs_kv: older spelling for keys and values given together.
      mask: ``(*batch, heads or 1, q_len, kv_len)``; False entries are not attended.
      deterministic: overrides the attribute; needed when ``dropout_rate > 0``.
      dropout_rng: key for attention dropout (default: the 'dropout' stream).
      sow_weights: store the weights in 'intermediates' as 'attention_weights'.

    Returns:
      ``(*batch, q_len, out_features)``.
    """
    where = layer_name(self)
    if inputs_kv is not None:
      if inputs_k is not None or inputs_v is not None:
        raise AttentionInputsError(where, "inputs_kv was given together with inputs_k/inputs_v")
      inputs_k = inputs_v = inputs_kv
    else:
      if inputs_k is None:
        if inputs_v is not None:
          raise AttentionInputsError(where, "inputs_v was given without inputs_k")
        inputs_k = inputs_q
      if inputs_v is None:
        inputs_v = inputs_k
    features = self.out_features or inputs_q.shape[-1]
    qkv_features = self.qkv_features or inputs_q.shape[-1]
    if qkv_features % self.num_heads:
      raise NumHeadsError(where, qkv_features, self.num_heads)
    head_dim = qkv_features // self.num_heads

    def projection(name: str) -> DenseGeneral:
      return DenseGeneral(
        features=(self.num_heads, head_dim), axis=-1, dtype=self.dtype,
        param_dtype=self.param_dtype, kernel_init=self.kernel_init, bias_init=self.bias_init,
        use_bias=self.use_bias, precision=self.precision, dot_general=self.qkv_dot_general,
        dot_general_cls=self.qkv_dot_general_cls, name=name,
      )

    query = projection("query")(inputs_q)
    key = projection("key")(inputs_k)
    value = projection("value")(inputs_v)
    if self.normalize_qk:
      query = LayerNorm(name="query_ln", use_bias=False, dtype=self.dtype,
                        param_dtype=self.param_dtype)(query)
      key = LayerNorm(name="key_ln", use_bias=False, dtype=self.dtype,
                      param_dtype=self.param_dtype)(key)
    if self.decode:
      key, value, mask = self._update_cache(query, key, value, mask, where)

    if self.dropout_rate > 0.0:
      deterministic = merge_param("deterministic", self.deterministic, deterministic)
      if not deterministic and dropout_rng is None:
        dropout_rng = self.make_rng("dropout")
    else:
      deterministic = True
    # Optional arguments only when used, so custom attention_fns without them keep working.
    extra: dict[str, Any] = {"module": self} if sow_weights else {}
    if self.qk_attn_weights_einsum_cls is not None:
      extra["qk_attn_weights_einsum"] = self.qk_attn_weights_einsum_cls()
    if self.attn_weights_value_einsum_cls is not None:
      extra["attn_weights_value_einsum"] = self.attn_weights_value_einsum_cls()
    x = self.attention_fn(
      query, key, value, mask=mask, dropout_rng=dropout_rng, dropout_rate=self.dropout_rate,
      broadcast_dropout=self.broadcast_dropout, deterministic=deterministic, dtype=self.dtype,
      precision=self.precision, force_fp32_for_softmax=self.force_fp32_for_softmax, **extra,
    )
    return DenseGeneral(
      features=features, axis=(-2, -1), kernel_init=self.out_kernel_init or self.kernel_init,
      bias_init=self.out_bias_init or self.bias_init, use_bias=self.use_bias, dtype=self.dtype,
      param_dtype=self.param_dtype, precision=self.precision, dot_general=self.out_dot_general,
      dot_general_cls=self.out_dot_general_cls, name="out",
    )(x)

  def _update_cache(self, query: Array, key: Array, value: Array, mask: Array | None,
                    where: str) -> tuple[Array, Array, Array | None]:
    """Writes this step's key/value at ``cache_index`` and masks the positions not yet
    written. The first call (init) only creates the cache, sized by its inputs."""
    initialized = self.has_variable("cache", "cached_key")
    cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
    cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
    cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
    if not initialized:
      return key, value, mask
    *batch, max_length, heads, depth = cached_key.value.shape
    expected = (*batch, 1, heads, depth)
    if tuple(query.shape) != expected:
      raise DecodeCacheError(where, expected, tuple(query.shape))
    index = cache_index.value
    zero = jnp.zeros((), index.dtype)
    start = (zero,) * len(batch) + (index, zero, zero)
    key = lax.dynamic_update_slice(cached_key.value, key, start)
    value = lax.dynamic_update_slice(cached_value.value, value, start)
    cached_key.value, cached_value.value = key, value
    cache_index.value = index + 1
    written = jnp.broadcast_to(jnp.arange(max_length) <= index, (*batch, 1, 1, max_length))
    return key, value, combine_masks(mask, written)


class SelfAttention(MultiHeadDotProductAttention):
  """Multi-head attention of the inputs to themselves."""

  @compact
  def __call__(  # type: ignore[override]
    self,
    inputs_q: Array,
    mask: Array | None = None,
    deterministic: bool | None = None,
    dropout_rng: PRNGKey | None = None,
    sow_weights: bool = False,
  ) -> Array:
    return super().__call__(inputs_q, mask=mask, deterministic=deterministic,
                            dropout_rng=dropout_rng, sow_weights=sow_weights)


class MultiHeadAttention(MultiHeadDotProductAttention):
  """:class:`MultiHeadDotProductAttention` under Flax's other name (a subclass, so its
  default submodule name is ``MultiHeadAttention_<n>``)."""
