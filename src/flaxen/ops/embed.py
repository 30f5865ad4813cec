"""Embedding lookup and its transpose (``attend``, for tied output layers).

>>> import jax.numpy as jnp
>>> table = jnp.arange(6.).reshape(3, 2)
>>> lookup(table, jnp.array([2, 0])).tolist()
[[4.0, 5.0], [0.0, 1.0]]
>>> attend(table, jnp.array([1., 0.])).tolist()
[0.0, 2.0, 4.0]
"""

from __future__ import annotations

import jax.numpy as jnp

from flaxen.errors.layers import InputShapeError
from flaxen.ops.dtypes import promote_dtype
from flaxen.typing import Array, Dtype, PrecisionLike

__all__ = ["attend", "lookup"]


def lookup(embedding: Array, inputs: Array, *, dtype: Dtype | None = None,
           where: str = "Embed") -> Array:
  """The rows of ``embedding`` (``(num_embeddings, features)``) at integer ``inputs``.

  Raises:
    InputShapeError: ``inputs`` are not integers.
  """
  inputs = jnp.asarray(inputs)
  if not jnp.issubdtype(inputs.dtype, jnp.integer):
    raise InputShapeError(
      where, f"integer indices, got dtype {inputs.dtype}", inputs.shape,
      "cast the token ids to an integer dtype, e.g. inputs.astype(jnp.int32)",
    )
  (embedding,) = promote_dtype(embedding, dtype=dtype, inexact=False)
  if embedding.shape[0] == 1:
    # A one-row table needs no gather.
    return jnp.broadcast_to(embedding, inputs.shape + embedding.shape[1:])
  return jnp.take(embedding, inputs, axis=0)


def attend(embedding: Array, query: Array, *, dtype: Dtype | None = None,
           precision: PrecisionLike = None) -> Array:
  """``query @ embedding.T``: similarity of ``(..., features)`` queries to every row."""
  query, embedding = promote_dtype(query, embedding, dtype=dtype)
  return jnp.dot(query, embedding.T, precision=precision)
