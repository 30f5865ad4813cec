"""Multi-head attention as an NNX layer, with an autoregressive decode cache.

The math is :mod:`flaxen.ops.attention`; its mask helpers are re-exported here, and
``dot_product_attention`` / ``dot_product_attention_weights`` accept an NNX Module as
``module`` (the weights are sown as an ``nnx.Intermediate`` named ``attention_weights``).

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> layer = nnx.MultiHeadAttention(2, 4, qkv_features=8, decode=False, rngs=nnx.Rngs(0))
>>> layer(jnp.ones((1, 3, 4))).shape
(1, 3, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from flaxen.errors.layers import (
  AttentionInputsError,
  CacheNotInitializedError,
  DropoutRngError,
  NumHeadsError,
)
from flaxen.errors.linen import MergeParamError
from flaxen.nnx.module import Module
from flaxen.nnx.nn.defaults import (
  NO_METADATA,
  default_bias_init,
  default_kernel_init,
  rule_of,
)
from flaxen.nnx.nn.dtypes import promote_dtype as default_promote_dtype
from flaxen.nnx.nn.linear import LinearGeneral
from flaxen.nnx.nn.normalization import LayerNorm
from flaxen.nnx.rnglib import Rngs, RngStream
from flaxen.nnx.variables import Cache, Intermediate
from flaxen.ops import attention as attention_ops
from flaxen.ops.attention import combine_masks, make_attention_mask, make_causal_mask
from flaxen.typing import Array, DotGeneralT, Dtype, Initializer, PrecisionLike, PromoteDtypeFn

__all__ = [
  "MultiHeadAttention", "combine_masks", "dot_product_attention",
  "dot_product_attention_weights", "make_attention_mask", "make_causal_mask",
]


class _Sower:
  """Adapts an NNX Module to the ``sow(collection, name, value)`` the ops call."""

  def __init__(self, module: Module):
    self.module = module

  def sow(self, collection: str, name: str, value: Any) -> None:
    self.module.sow(Intermediate, name, value)


def _sower(module: Any) -> Any:
  return _Sower(module) if isinstance(module, Module) else module


def dot_product_attention_weights(
  query: Array, key: Array, bias: Array | None = None, mask: Array | None = None,
  broadcast_dropout: bool = True, dropout_rng: jax.Array | None = None,
  dropout_rate: float = 0.0, deterministic: bool = False, dtype: Dtype | None = None,
  precision: PrecisionLike = None, module: Module | None = None,
  promote_dtype: PromoteDtypeFn = default_promote_dtype, is_causal: bool = False,
) -> Array:
  """The softmax attention weights ``(*batch, heads, q_len, kv_len)``; arguments as
  :func:`flaxen.ops.attention.dot_product_attention_weights`, with ``module`` an NNX Module
  that receives the weights as ``module.attention_weights`` (an ``Intermediate``),
  ``promote_dtype`` called as ``promote_dtype((query, key), dtype=dtype)`` and
  ``is_causal`` adding a causal mask."""
  return attention_ops.dot_product_attention_weights(
    query, key, bias, mask, broadcast_dropout, dropout_rng, dropout_rate, deterministic,
    dtype, precision, _sower(module), promote_rule=rule_of(promote_dtype), is_causal=is_causal)


def dot_product_attention(
  query: Array, key: Array, value: Array, bias: Array | None = None,
  mask: Array | None = None, broadcast_dropout: bool = True,
  dropout_rng: jax.Array | None = None, dropout_rate: float = 0.0,
  deterministic: bool = False, dtype: Dtype | None = None, precision: PrecisionLike = None,
  module: Module | None = None, promote_dtype: PromoteDtypeFn = default_promote_dtype,
  is_causal: bool = False,
) -> Array:
  """Scaled dot-product attention ``(*batch, q_len, heads, v_depth)``; arguments as
  :func:`dot_product_attention_weights` (``promote_dtype`` gets ``(query, key, value)``)."""
  return attention_ops.dot_product_attention(
    query, key, value, bias, mask, broadcast_dropout, dropout_rng, dropout_rate,
    deterministic, dtype, precision, _sower(module), promote_rule=rule_of(promote_dtype),
    is_causal=is_causal)


def _dot_general(fn: DotGeneralT | None, cls: Any) -> DotGeneralT:
  if cls is not None:
    return cls()
  return lax.dot_general if fn is None else fn


class MultiHeadAttention(Module):
  """Projects inputs to per-head queries, keys and values, attends, and projects back.

  Submodules: ``query``, ``key``, ``value`` (LinearGeneral, kernels ``(in, heads,
  head_dim)``), ``out`` (kernel ``(heads, head_dim, out_features)``), and with
  ``normalize_qk`` the LayerNorms ``query_ln`` / ``key_ln`` (no bias).

  Args:
    num_heads: number of heads; must divide ``qkv_features``.
    in_features: size of the query inputs' last axis.
    qkv_features: total size of queries/keys/values (default: ``in_features``).
    out_features: output size (default: ``in_features``).
    num_kv_heads: number of key/value heads (default: ``num_heads``); fewer, dividing
      ``num_heads``, gives grouped-query attention.
    in_kv_features: size of the key/value inputs' last axis (default: ``in_features``).
    dtype, param_dtype, precision: as in :class:`Linear`.
    broadcast_dropout: share the attention dropout mask across batch and heads.
    dropout_rate: dropout rate of the attention weights.
    deterministic: disable dropout (flipped by ``eval()`` / ``train()``; may be given per
      call).
    kernel_init, bias_init: initializers of the projections.
    out_kernel_init, out_bias_init: of the output projection (default: the above).
    use_bias: whether the projections have biases.
    attention_fn: :func:`dot_product_attention` or a function with its signature.
    decode: autoregressive decoding: create the cache with :meth:`init_cache`, then call
      with one position at a time.
    normalize_qk: apply LayerNorms (without bias) to queries and keys.
    qkv_promote_dtype, out_promote_dtype, ln_promote_dtype: the ``promote_dtype`` rules of
      the query/key/value projections, the output projection and the qk LayerNorms.
    qkv_dot_general, out_dot_general: replace ``lax.dot_general`` in the projections.
    qkv_dot_general_cls, out_dot_general_cls: classes whose instances replace it.
    rngs: random streams (``params``; ``dropout`` is drawn from them at call time when
      ``dropout_rate > 0``).
    keep_rngs: keep a fork of the ``dropout`` stream (as ``self.rngs``) for dropout.
    kernel_metadata, bias_metadata: metadata of the query/key/value Params (e.g.
      ``sharding``); out_kernel_metadata, out_bias_metadata: of the output projection's;
      query_ln_scale_metadata, key_ln_scale_metadata: of the qk-norm scales.
  """

  def __init__(self, num_heads: int, in_features: int, qkv_features: int | None = None,
               out_features: int | None = None, num_kv_heads: int | None = None,
               in_kv_features: int | None = None, *,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               broadcast_dropout: bool = True, dropout_rate: float = 0.0,
               deterministic: bool | None = None, precision: PrecisionLike = None,
               kernel_init: Initializer = default_kernel_init,
               out_kernel_init: Initializer | None = None,
               bias_init: Initializer = default_bias_init,
               out_bias_init: Initializer | None = None, use_bias: bool = True,
               attention_fn: Callable[..., Array] = dot_product_attention,
               decode: bool | None = None, normalize_qk: bool = False,
               qkv_promote_dtype: PromoteDtypeFn = default_promote_dtype,
               out_promote_dtype: PromoteDtypeFn = default_promote_dtype,
               ln_promote_dtype: PromoteDtypeFn = default_promote_dtype,
               qkv_dot_general: DotGeneralT | None = None,
               out_dot_general: DotGeneralT | None = None, qkv_dot_general_cls: Any = None,
               out_dot_general_cls: Any = None, rngs: Rngs, keep_rngs: bool = True,
               kernel_metadata: Mapping[str, Any] = NO_METADATA,
               out_kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA,
               out_bias_metadata: Mapping[str, Any] = NO_METADATA,
               query_ln_scale_metadata: Mapping[str, Any] = NO_METADATA,
               key_ln_scale_metadata: Mapping[str, Any] = NO_METADATA):
    self.num_heads = num_heads
    self.in_features = in_features
    self.qkv_features = qkv_features if qkv_features is not None else in_features
    self.out_features = out_features if out_features is not None else in_features
    self.in_kv_features = in_kv_features if in_kv_features is not None else in_features
    if self.qkv_features % num_heads:
      raise NumHeadsError(type(self).__name__, self.qkv_features, num_heads)
    self.head_dim = self.qkv_features // num_heads
    self.num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    if num_heads % self.num_kv_heads:
      raise NumHeadsError(type(self).__name__, num_heads, self.num_kv_heads, what="num_heads",
                          divisor="num_kv_heads")
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.broadcast_dropout = broadcast_dropout
    self.dropout_rate = dropout_rate
    self.deterministic = deterministic
    self.precision = precision
    self.use_bias = use_bias
    self.attention_fn = attention_fn
    self.decode = decode
    self.normalize_qk = normalize_qk

    def projection(in_features: Any, out_features: Any, axis: Any, dot_general: DotGeneralT,
                   out: bool = False) -> LinearGeneral:
      return LinearGeneral(
        in_features, out_features, axis=axis, use_bias=use_bias, dtype=dtype,
        param_dtype=param_dtype, kernel_init=(out_kernel_init or kernel_init) if out
        else kernel_init, bias_init=(out_bias_init or bias_init) if out else bias_init,
        precision=precision, dot_general=dot_general, rngs=rngs,
        promote_dtype=out_promote_dtype if out else qkv_promote_dtype,
        kernel_metadata=out_kernel_metadata if out else kernel_metadata,
        bias_metadata=out_bias_metadata if out else bias_metadata)

    heads, kv_heads = (num_heads, self.head_dim), (self.num_kv_heads, self.head_dim)
    qkv_dot = _dot_general(qkv_dot_general, qkv_dot_general_cls)
    self.query = projection(in_features, heads, -1, qkv_dot)
    self.key = projection(self.in_kv_features, kv_heads, -1, qkv_dot)
    self.value = projection(self.in_kv_features, kv_heads, -1, qkv_dot)
    self.query_ln = self.key_ln = None
    if normalize_qk:
      norm = dict(use_bias=False, dtype=dtype, param_dtype=param_dtype,
                  promote_dtype=ln_promote_dtype, rngs=rngs)
      self.query_ln = LayerNorm(self.head_dim, scale_metadata=query_ln_scale_metadata, **norm)
      self.key_ln = LayerNorm(self.head_dim, scale_metadata=key_ln_scale_metadata, **norm)
    self.out = projection(heads, self.out_features, (-2, -1),
                          _dot_general(out_dot_general, out_dot_general_cls), out=True)
    self.rngs = rngs.dropout.fork() if keep_rngs and dropout_rate > 0 else None
    self.cached_key: Cache | None = None
    self.cached_value: Cache | None = None
    self.cache_index: Cache | None = None

  def __call__(self, inputs_q: Array, inputs_k: Array | None = None,
               inputs_v: Array | None = None, *, mask: Array | None = None,
               deterministic: bool | None = None,
               rngs: Rngs | RngStream | jax.Array | None = None, sow_weights: bool = False,
               decode: bool | None = None, is_causal: bool = False, out_sharding: Any = None,
               qkv_sharding: Any = None) -> Array:
    """Attends from ``inputs_q`` to ``inputs_k`` / ``inputs_v``.

    Args:
      inputs_q: ``(*batch, q_len, in_features)``.
      inputs_k: ``(*batch, kv_len, in_kv_features)``; defaults to ``inputs_q``.
      inputs_v: defaults to ``inputs_k``.
      mask: ``(*batch, heads or 1, q_len, kv_len)``; False entries are not attended.
      deterministic: overrides the attribute.
      rngs: where to draw the dropout key (``Rngs``, ``RngStream`` or a key); default: the
        layer's own ``rngs``.
      sow_weights: store the attention weights as ``self.attention_weights``.
      decode: overrides the attribute.
      is_causal: also mask every key after the query's position (passed on to
        ``attention_fn`` only when set).
      out_sharding: the sharding of the output projection's result.
      qkv_sharding: the sharding of the query/key/value projections' results.

    Returns:
      ``(*batch, q_len, out_features)``.

    Raises:
      CacheNotInitializedError: decoding before :meth:`init_cache`.
      MergeParamError: ``dropout_rate > 0`` and ``deterministic`` is set neither here nor on
        the layer (``model.train()`` / ``model.eval()`` set it).
      DecodeCacheError: a decode step with more than one position.
    """
    where = type(self).__name__
    if inputs_k is None:
      if inputs_v is not None:
        raise AttentionInputsError(where, "inputs_v was given without inputs_k")
      inputs_k = inputs_q
    if inputs_v is None:
      inputs_v = inputs_k
    query = self.query(inputs_q, out_sharding=qkv_sharding)
    key = self.key(inputs_k, out_sharding=qkv_sharding)
    value = self.value(inputs_v, out_sharding=qkv_sharding)
    if self.normalize_qk:
      query, key = self.query_ln(query), self.key_ln(key)
    decode = self.decode if decode is None else decode
    if decode:
      if self.cached_key is None:
        raise CacheNotInitializedError(where)
      cached = attention_ops.update_cache(
        self.cached_key.value, self.cached_value.value, self.cache_index.value, key, value,
        mask, where=where)
      key, value, self.cache_index.value, mask = cached
      self.cached_key.value, self.cached_value.value = key, value

    dropout_rng = None
    if self.dropout_rate > 0.0:
      deterministic = self.deterministic if deterministic is None else deterministic
      if deterministic is None:  # set by model.train() / model.eval(), or pass it per call
        raise MergeParamError("deterministic", both=False)
      if not deterministic:
        dropout_rng = self._dropout_key(self.rngs if rngs is None else rngs, where)
    else:
      deterministic = True
    # Optional arguments only when used, so custom attention_fns without them keep working.
    extra: dict[str, Any] = {"module": self} if sow_weights else {}
    if is_causal:
      extra["is_causal"] = True
    x = self.attention_fn(
      query, key, value, mask=mask, dropout_rng=dropout_rng, dropout_rate=self.dropout_rate,
      broadcast_dropout=self.broadcast_dropout, deterministic=deterministic, dtype=self.dtype,
      precision=self.precision, **extra,
    )
    return self.out(x, out_sharding=out_sharding)

  @staticmethod
  def _dropout_key(rngs: Any, where: str) -> jax.Array:
    if rngs is None:
      raise DropoutRngError(where)
    if isinstance(rngs, Rngs):
      return rngs.dropout()
    return rngs() if isinstance(rngs, RngStream) else rngs

  def set_view(self, deterministic: bool | None = None, decode: bool | None = None,
               batch_size: int | Sequence[int] | None = None, max_length: int | None = None,
               **kwargs: Any) -> dict[str, Any]:
    """For ``nnx.view``: sets the given attributes; returns the other arguments.

    Args:
      deterministic: disable dropout.
      decode: autoregressive decoding.
      batch_size: with ``max_length``, the batch size (or shape) of a fresh decode cache.
      max_length: with ``batch_size``, the length of a fresh decode cache.
    """
    if deterministic is not None:
      self.deterministic = deterministic
    if decode is not None:
      self.decode = decode
    if batch_size is not None and max_length is not None:
      batch = (batch_size,) if isinstance(batch_size, int) else tuple(batch_size)
      self.init_cache((*batch, max_length, self.in_features), self.dtype or jnp.float32)
    return kwargs

  def init_cache(self, input_shape: Sequence[int], dtype: Dtype = jnp.float32) -> None:
    """Creates zeroed ``cached_key`` / ``cached_value`` (``(*batch, max_length,
    num_kv_heads, head_dim)``) and ``cache_index`` Cache Variables for decoding.

    Args:
      input_shape: the full-length input shape ``(*batch, max_length, features)``.
      dtype: dtype of the caches.

    >>> import jax.numpy as jnp
    >>> from flaxen import nnx
    >>> layer = nnx.MultiHeadAttention(2, 4, decode=True, rngs=nnx.Rngs(0))
    >>> layer.init_cache((1, 5, 4))
    >>> layer(jnp.ones((1, 1, 4))).shape, int(layer.cache_index.value)
    ((1, 1, 4), 1)
    """
    shape = (*input_shape[:-1], self.num_kv_heads, self.head_dim)
    self.cached_key = Cache(jnp.zeros(shape, dtype))
    self.cached_value = Cache(jnp.zeros(shape, dtype))
    self.cache_index = Cache(jnp.array(0, jnp.int32))
