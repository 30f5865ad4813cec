"""Dtype helpers of NNX layers (``flaxen.nnx.nn.dtypes``), over :mod:`flaxen.ops.dtypes`.

As in Flax's NNX, ``promote_dtype`` takes and returns one tuple (Linen's takes varargs).

>>> import jax.numpy as jnp
>>> x, w = promote_dtype((jnp.ones(2, jnp.bfloat16), jnp.ones(2)), dtype=None)
>>> x.dtype, w.dtype
(dtype('float32'), dtype('float32'))
"""

from __future__ import annotations

from typing import Any

from flaxen.ops import dtypes as dtype_ops
from flaxen.ops.dtypes import canonicalize_dtype
from flaxen.typing import Dtype

__all__ = ["canonicalize_dtype", "promote_dtype"]


def promote_dtype(args: tuple, /, *, dtype: Dtype | None = None, inexact: bool = True) -> tuple:
  """``args`` cast to one dtype (``dtype``, or their promoted inexact type); ``None`` entries
  stay ``None``."""
  promoted: list[Any] = dtype_ops.promote_dtype(*args, dtype=dtype, inexact=inexact)
  return tuple(promoted)
