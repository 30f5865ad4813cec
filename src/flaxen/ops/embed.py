"""Embedding lookup and its transpose (``attend``, for tied output layers).

>>> import jax.numpy as jnp
>>> table = jnp.arange(6.).reshape(3, 2)
>>> lookup(table, jnp.array([2, 0])).tolist()
[[4.0, 5.0], [0.0, 1.0]]
>>> attend(table, jnp.array([1., 0.])).tolist()
[0.0, 2.0, 4.0]
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from flaxen.errors.layers import InputShapeError
from flaxen.ops.dtypes import PromoteFn, promote
from flaxen.typing import Array, Dtype, PrecisionLike

__all__ = ["attend", "lookup"]


def lookup(embedding: Array, inputs: Array, *, dtype: Dtype | None = None,
           promote_rule: PromoteFn | None = None, out_sharding: Any = None,
           where: str = "Embed") -> Array:
  """The rows of ``embedding`` (``(num_embeddings, features)``) at integer ``inputs``.

  ``promote_rule`` is the layer's ``promote_dtype`` (called with ``inexact=False``: the table
  may be of any dtype); ``out_sharding`` the sharding of the gathered rows.

  Raises:
    InputShapeError: ``inputs`` are not integers.
  """
  inputs = jnp.asarray(inputs)
  if not jnp.issubdtype(inputs.dtype, jnp.integer):
    raise InputShapeError(
      where, f"integer indices, got dtype {inputs.dtype}", inputs.shape,
      "cast the token ids to an integer dtype, e.g. inputs.astype(jnp.int32)",
    )
  (embedding,) = promote((embedding,), dtype=dtype, inexact=False, rule=promote_rule)
  if embedding.shape[0] == 1 and out_sharding is None:
    # A one-row table needs no gather.
    return jnp.broadcast_to(embedding, inputs.shape + embedding.shape[1:])
  if out_sharding is not None:
    return embedding.at[inputs].get(out_sharding=out_sharding)
  return jnp.take(embedding, inputs, axis=0)


def attend(embedding: Array, query: Array, *, dtype: Dtype | None = None,
           precision: PrecisionLike = None, promote_rule: PromoteFn | None = None,
           out_sharding: Any = None) -> Array:
  """``query @ embedding.T``: similarity of ``(..., features)`` queries to every row."""
  query, embedding = promote((query, embedding), dtype=dtype, rule=promote_rule)
  if out_sharding is not None:
    return jnp.dot(query, embedding.T, precision=precision, out_sharding=out_sharding)
  return jnp.dot(query, embedding.T, precision=precision)
