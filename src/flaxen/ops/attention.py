"""Scaled dot-product attention and its masks.

Shapes follow the multi-head convention: queries ``(*batch, q_len, heads, depth)``,
keys and values ``(*batch, kv_len, heads, depth)``, weights and masks
``(*batch, heads, q_len, kv_len)`` (any dim of a mask or bias may be 1 to broadcast). Keys
and values may have fewer heads, dividing the queries' (grouped-query attention: each
key/value head serves a group of query heads).

>>> import jax.numpy as jnp
>>> q = k = v = jnp.ones((1, 3, 2, 4))
>>> dot_product_attention(q, k, v, mask=make_causal_mask(jnp.ones((1, 3)))).shape
(1, 3, 2, 4)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

import jax
import jax.numpy as jnp

from flaxen.errors.layers import (
  AttentionEinsumError,
  DecodeCacheError,
  DropoutRngError,
  InputShapeError,
)
from flaxen.ops.dtypes import PromoteFn, promote
from flaxen.ops.stochastic import explicit_spec, keep_mask
from flaxen.typing import Array, Dtype, PrecisionLike, PRNGKey

__all__ = [
  "combine_masks", "dot_product_attention", "dot_product_attention_weights",
  "make_attention_mask", "make_causal_mask", "update_cache",
]


def _share_kv_heads(query: Array, *arrays: Array) -> list[Array]:
  """Grouped-query attention: when the keys/values have fewer heads than the queries (and
  divide them), each key/value head serves a group of query heads, so it is repeated."""
  heads = query.shape[-2] if query.ndim >= 3 else 0
  out = []
  for a in arrays:
    kv_heads = a.shape[-2] if a.ndim >= 3 else 0
    if kv_heads and heads != kv_heads and heads % kv_heads == 0:
      spec = explicit_spec(a)  # under explicit sharding, repeat must be told its output's
      a = jnp.repeat(a, heads // kv_heads, axis=-2, out_sharding=spec)
    out.append(a)
  return out


def _check_shapes(query: Array, key: Array, value: Array | None = None) -> None:
  ok = query.ndim == key.ndim >= 3 and query.shape[:-3] == key.shape[:-3]
  ok = ok and query.shape[-2:] == key.shape[-2:]
  if value is not None:
    ok = ok and value.ndim == key.ndim and value.shape[:-1] == key.shape[:-1]
  if not ok:
    shapes = [tuple(a.shape) for a in (query, key, value) if a is not None]
    raise InputShapeError(
      "dot_product_attention",
      "query (*batch, q_len, heads, depth), key/value (*batch, kv_len, heads, depth) with "
      "equal batch dims, heads and query/key depth",
      shapes[0], f"fix the shapes (query, key[, value]) = {shapes}",
    )


def _default_einsum(precision: PrecisionLike,
                    einsum_dot_general: Callable[..., Array] | None) -> Callable[..., Array]:
  if einsum_dot_general is None:
    return lambda eq, a, b: jnp.einsum(eq, a, b, precision=precision)
  return lambda eq, a, b: jnp.einsum(eq, a, b, precision=precision,
                                     _dot_general=einsum_dot_general)


def _check_einsums(precision: PrecisionLike, einsum_dot_general: Any, *einsums: Any) -> None:
  """A replaced einsum carries its own precision and dot_general (it is called with the
  subscripts and the two operands only), so giving those too is a mistake."""
  if any(e is not None for e in einsums) and (
      precision is not None or einsum_dot_general is not None):
    raise AttentionEinsumError(
      "precision / einsum_dot_general were given together with a replacement einsum, which "
      "is called without them", "set the precision inside the einsum you pass, or drop it")


def _causal(mask: Array | None, q_len: int, kv_len: int) -> Array:
  """``mask`` and a causal mask (query ``i`` sees keys ``j <= i``, aligned top-left)."""
  causal = jnp.tril(jnp.ones((q_len, kv_len), jnp.bool_))
  return causal if mask is None else jnp.logical_and(mask, causal)


def dot_product_attention_weights(
  query: Array,
  key: Array,
  bias: Array | None = None,
  mask: Array | None = None,
  broadcast_dropout: bool = True,
  dropout_rng: PRNGKey | None = None,
  dropout_rate: float = 0.0,
  deterministic: bool = False,
  dtype: Dtype | None = None,
  precision: PrecisionLike = None,
  module: Any = None,
  force_fp32_for_softmax: bool = False,
  einsum_dot_general: Callable[..., Array] | None = None,
  einsum: Callable[..., Array] | None = None,
  *,
  promote_rule: PromoteFn | None = None,
  is_causal: bool = False,
) -> Array:
  """Softmax attention weights ``(*batch, heads, q_len, kv_len)`` of ``query`` over ``key``.

  Args:
    query, key: ``(*batch, len, heads, depth)``.
    bias: added to the logits (e.g. relative positions); broadcastable to the weights.
    mask: where ``False`` (or 0), the logit is set to the dtype's minimum.
    broadcast_dropout: share the dropout mask across batch and heads.
    dropout_rng: key for dropout of the weights.
    dropout_rate: probability of dropping a weight.
    deterministic: no dropout.
    dtype: computation dtype; ``None`` means the result type of ``query`` and ``key``.
    precision: ``lax`` precision of the einsum.
    module: an object with ``sow(collection, name, value)`` (a Linen module); the weights
      are sown into its 'intermediates' as 'attention_weights'.
    force_fp32_for_softmax: compute the softmax in float32 for half-precision dtypes (the
      weights then stay float32).
    einsum_dot_general: ``_dot_general`` passed to the einsum.
    einsum: replaces ``jnp.einsum``, called as ``einsum(subscripts, query, key)``
      (so not together with ``precision`` or ``einsum_dot_general``).
    promote_rule: the ``promote_dtype`` rule of :func:`flaxen.ops.dtypes.promote`.
    is_causal: also mask every key after the query's position.

  Raises:
    AttentionEinsumError: ``einsum`` together with ``precision`` or ``einsum_dot_general``.
  """
  _check_einsums(precision, einsum_dot_general, einsum)
  query, key = promote((query, key), dtype=dtype, rule=promote_rule)
  (key,) = _share_kv_heads(query, key)
  _check_shapes(query, key)
  dtype = query.dtype
  if einsum is None:
    einsum = _default_einsum(precision, einsum_dot_general)
  query = query / jnp.sqrt(query.shape[-1]).astype(dtype)
  logits = einsum("...qhd,...khd->...hqk", query, key)
  if bias is not None:
    logits = logits + bias
  if is_causal:
    mask = _causal(mask, query.shape[-3], key.shape[-3])
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(dtype).min)
  if force_fp32_for_softmax and dtype != jnp.float32:
    weights = jax.nn.softmax(logits.astype(jnp.float32))
  else:
    weights = jax.nn.softmax(logits).astype(dtype)
  if module is not None:
    module.sow("intermediates", "attention_weights", weights)
  if not deterministic and dropout_rate > 0.0:
    if dropout_rng is None:
      raise DropoutRngError("dot_product_attention")
    keep_prob = 1.0 - dropout_rate
    # Broadcast dropout shares one (q_len, kv_len) mask over every batch dim and head.
    shared = tuple(range(weights.ndim - 2)) if broadcast_dropout else ()
    keep = keep_mask(dropout_rng, keep_prob, weights.shape, shared)
    weights = weights * (keep.astype(dtype) / jnp.asarray(keep_prob, dtype))
  return weights


def dot_product_attention(
  query: Array,
  key: Array,
  value: Array,
  bias: Array | None = None,
  mask: Array | None = None,
  broadcast_dropout: bool = True,
  dropout_rng: PRNGKey | None = None,
  dropout_rate: float = 0.0,
  deterministic: bool = False,
  dtype: Dtype | None = None,
  precision: PrecisionLike = None,
  module: Any = None,
  force_fp32_for_softmax: bool = False,
  einsum_dot_general: Callable[..., Array] | None = None,
  qk_attn_weights_einsum: Callable[..., Array] | None = None,
  attn_weights_value_einsum: Callable[..., Array] | None = None,
  *,
  promote_rule: PromoteFn | None = None,
  is_causal: bool = False,
) -> Array:
  """Attention output ``(*batch, q_len, heads, v_depth)``: the weights applied to ``value``.

  Arguments are those of :func:`dot_product_attention_weights`; ``value`` has shape
  ``(*batch, kv_len, heads, v_depth)``. The two einsums are replaced together, each called
  as ``einsum(subscripts, a, b)``.

  Raises:
    AttentionEinsumError: only one einsum is replaced, or they come with ``precision`` or
      ``einsum_dot_general``.
  """
  if (qk_attn_weights_einsum is None) != (attn_weights_value_einsum is None):
    raise AttentionEinsumError(
      "only one of qk_attn_weights_einsum / attn_weights_value_einsum was given",
      "pass both einsums (e.g. the same one twice), or neither")
  _check_einsums(precision, einsum_dot_general, qk_attn_weights_einsum)
  query, key, value = promote((query, key, value), dtype=dtype, rule=promote_rule)
  key, value = _share_kv_heads(query, key, value)
  _check_shapes(query, key, value)
  weights = dot_product_attention_weights(
    query, key, bias, mask, broadcast_dropout, dropout_rng, dropout_rate, deterministic,
    query.dtype, precision, module, force_fp32_for_softmax, einsum_dot_general,
    qk_attn_weights_einsum, is_causal=is_causal,
  )
  einsum = attn_weights_value_einsum
  if einsum is None:
    einsum = _default_einsum(precision, einsum_dot_general)
  return einsum("...hqk,...khd->...qhd", weights, value)


def make_attention_mask(
  query_input: Array,
  key_input: Array,
  pairwise_fn: Callable[[Array, Array], Array] = jnp.multiply,
  extra_batch_dims: int = 0,
  dtype: Dtype = jnp.float32,
) -> Array:
  """A ``(*batch, 1, q_len, kv_len)`` mask from per-position query and key values.

  ``mask[..., 0, i, j] = pairwise_fn(query_input[..., i], key_input[..., j])``, e.g. a
  padding mask from 0/1 token validity.

  >>> make_attention_mask(jnp.array([1, 1, 0]), jnp.array([1, 0])).shape
  (1, 3, 2)
  """
  mask = pairwise_fn(jnp.expand_dims(query_input, -1), jnp.expand_dims(key_input, -2))
  mask = jnp.expand_dims(mask, -3)
  mask = jnp.expand_dims(mask, tuple(range(extra_batch_dims)))
  return mask.astype(dtype)


def make_causal_mask(x: Array, extra_batch_dims: int = 0, dtype: Dtype = jnp.float32) -> Array:
  """A causal mask ``(*batch, 1, len, len)`` for inputs ``x`` of shape ``(*batch, len)``.

  >>> make_causal_mask(jnp.ones((1, 3)))[0, 0].astype(int).tolist()
  [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
  """
  idxs = jnp.broadcast_to(jnp.arange(x.shape[-1], dtype=jnp.int32), x.shape)
  return make_attention_mask(idxs, idxs, jnp.greater_equal, extra_batch_dims, dtype)


def combine_masks(*masks: Array | None, dtype: Dtype = jnp.float32) -> Array | None:
  """The logical AND of the given masks (``None`` entries skipped), or ``None``.

  Raises:
    InputShapeError: the masks have different ranks.
  """
  present = [m for m in masks if m is not None]
  if not present:
    return None
  if len({m.ndim for m in present}) > 1:
    raise InputShapeError(
      "combine_masks", f"masks of one rank, got ranks {[m.ndim for m in present]}",
      present[0].shape, "expand the masks to the same rank before combining them",
    )
  return reduce(jnp.logical_and, present).astype(dtype)


def update_cache(
  cached_key: Array,
  cached_value: Array,
  cache_index: Array,
  key: Array,
  value: Array,
  mask: Array | None = None,
  *,
  where: str = "attention",
) -> tuple[Array, Array, Array, Array]:
  """One autoregressive decode step: writes this step's ``key``/``value`` at ``cache_index``.

  Args:
    cached_key, cached_value: ``(*batch, max_length, heads, depth)`` caches.
    cache_index: the scalar position of this step.
    key, value: this step's ``(*batch, 1, heads, depth)`` projections.
    mask: the caller's mask, combined with one that hides the positions not yet written.
    where: the layer named in error messages.

  Returns:
    ``(new_cached_key, new_cached_value, cache_index + 1, mask)``: attend with the new caches
    and the mask.

  Raises:
    DecodeCacheError: ``key`` is not one position of the cache's shape.

  >>> k, v, i, m = update_cache(jnp.zeros((1, 3, 1, 2)), jnp.zeros((1, 3, 1, 2)),
  ...                           jnp.array(0), jnp.ones((1, 1, 1, 2)), jnp.ones((1, 1, 1, 2)))
  >>> k[0, :, 0, 0].tolist(), int(i), m[0, 0, 0].tolist()
  ([1.0, 0.0, 0.0], 1, [1.0, 0.0, 0.0])
  """
  *batch, max_length, heads, depth = cached_key.shape
  expected = (*batch, 1, heads, depth)
  if tuple(key.shape) != expected:
    raise DecodeCacheError(where, expected, tuple(key.shape))
  zero = jnp.zeros((), cache_index.dtype)
  start = (zero,) * len(batch) + (cache_index, zero, zero)
  cached_key = jax.lax.dynamic_update_slice(cached_key, key.astype(cached_key.dtype), start)
  cached_value = jax.lax.dynamic_update_slice(cached_value, value.astype(cached_value.dtype),
                                              start)
  written = jnp.broadcast_to(jnp.arange(max_length) <= cache_index, (*batch, 1, 1, max_length))
  return cached_key, cached_value, cache_index + 1, combine_masks(mask, written)
