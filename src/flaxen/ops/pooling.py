"""Pooling over windows of channels-last inputs ``(*batch, *spatial, features)``.

No batch dims means an unbatched input; several are flattened for the reduction.

>>> import jax.numpy as jnp
>>> max_pool(jnp.arange(6.).reshape(1, 6, 1), (2,), strides=(2,))[0, :, 0].tolist()
[1.0, 3.0, 5.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

from flaxen.errors.layers import InputShapeError, InvalidPaddingError
from flaxen.ops.conv import canonicalize_padding, normalize_tuple
from flaxen.typing import Array, PaddingLike

__all__ = ["avg_pool", "max_pool", "min_pool", "pool"]


def pool(
  inputs: Array,
  init: Array | float,
  reduce_fn: Callable[[Array, Array], Array],
  window_shape: Sequence[int],
  strides: Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
) -> Array:
  """Reduces each window with ``reduce_fn`` (``lax.reduce_window``), starting from ``init``.

  Args:
    inputs: ``(*batch, *spatial, features)`` with one spatial dim per window dim.
    init: the reduction's identity (0 for a sum, -inf for a max).
    reduce_fn: a binary reduction such as ``lax.add`` or ``lax.max``.
    window_shape: window size per spatial dim.
    strides: step per spatial dim (default 1).
    padding: 'SAME', 'VALID', an int, or one int or ``(low, high)`` pair per spatial dim.
  """
  inputs = jnp.asarray(inputs)
  rank = len(window_shape)
  strides = normalize_tuple(strides, rank, "strides")
  n_batch = inputs.ndim - rank - 1
  if n_batch < 0:
    raise InputShapeError(
      f"pool with window {tuple(window_shape)}", f"at least {rank + 1} dims (spatial, features)",
      inputs.shape, "pass (*batch, *spatial, features) inputs with one spatial dim per window dim",
    )
  padding = canonicalize_padding(padding, rank)
  if padding in ("CIRCULAR", "CAUSAL"):
    raise InvalidPaddingError(padding, rank, "pooling supports 'SAME', 'VALID' or explicit pads")
  batch_shape = inputs.shape[:n_batch]
  x = inputs.reshape((-1, *inputs.shape[n_batch:]))
  if not isinstance(padding, str):
    padding = ((0, 0), *padding, (0, 0))
  y = lax.reduce_window(x, init, reduce_fn, (1, *window_shape, 1), (1, *strides, 1), padding)
  return y.reshape(batch_shape + y.shape[1:])


def max_pool(inputs: Array, window_shape: Sequence[int], strides: Sequence[int] | None = None,
             padding: PaddingLike = "VALID") -> Array:
  """The maximum of each window (padding counts as -inf)."""
  return pool(inputs, -jnp.inf, lax.max, window_shape, strides, padding)


def min_pool(inputs: Array, window_shape: Sequence[int], strides: Sequence[int] | None = None,
             padding: PaddingLike = "VALID") -> Array:
  """The minimum of each window (padding counts as +inf)."""
  return pool(inputs, jnp.inf, lax.min, window_shape, strides, padding)


def avg_pool(
  inputs: Array,
  window_shape: Sequence[int],
  strides: Sequence[int] | None = None,
  padding: PaddingLike = "VALID",
  count_include_pad: bool = True,
) -> Array:
  """The mean of each window.

  Args:
    count_include_pad: divide by the full window size, padding included; when ``False``,
      divide by the number of real (unpadded) elements in each window.

  >>> x = jnp.ones((1, 3, 1))
  >>> avg_pool(x, (2,), padding='SAME', count_include_pad=False)[0, :, 0].tolist()
  [1.0, 1.0, 1.0]
  """
  y = pool(inputs, 0.0, lax.add, window_shape, strides, padding)
  if count_include_pad:
    return y / np.prod(window_shape)
  # Count the real elements per window by pooling ones over one example's spatial shape.
  spatial = jnp.shape(inputs)[jnp.ndim(inputs) - len(window_shape) - 1:-1]
  counts = pool(jnp.ones((*spatial, 1), y.dtype), 0.0, lax.add, window_shape, strides, padding)
  return y / counts
