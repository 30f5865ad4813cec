"""Dropout: zero each element with probability ``rate``, scale survivors by ``1/(1-rate)``.

>>> import jax, jax.numpy as jnp
>>> y = dropout(jnp.ones((2, 4)), 0.5, jax.random.key(0), broadcast_dims=(0,))
>>> bool((y[0] == y[1]).all()) and set(y.ravel().tolist()) <= {0.0, 2.0}
True
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from flaxen.errors.layers import DropoutRngError, InvalidRateError
from flaxen.typing import Array, PRNGKey

__all__ = ["dropout", "keep_mask"]


def keep_mask(rng: PRNGKey, keep_prob: float, shape: Sequence[int],
              broadcast_dims: Sequence[int] = ()) -> Array:
  """A boolean mask of ``shape``, ``True`` with probability ``keep_prob``, drawn once along
  ``broadcast_dims`` (size 1 there) and broadcast to ``shape``."""
  draw_shape = list(shape)
  for dim in broadcast_dims:
    draw_shape[dim] = 1
  return jnp.broadcast_to(jax.random.bernoulli(rng, keep_prob, draw_shape), shape)


def dropout(
  inputs: Array,
  rate: float,
  rng: PRNGKey | None,
  *,
  broadcast_dims: Sequence[int] = (),
  deterministic: bool = False,
  where: str = "Dropout",
) -> Array:
  """Inverted dropout of ``inputs``.

  Args:
    inputs: the array to drop from.
    rate: probability of dropping an element, in ``[0, 1]``; 1 returns zeros.
    rng: a PRNG key; needed unless the call is deterministic or ``rate == 0``.
    broadcast_dims: dims along which the same mask is shared (e.g. time steps).
    deterministic: return ``inputs`` unchanged.
    where: the layer named in error messages.

  Raises:
    InvalidRateError: ``rate`` outside ``[0, 1]``.
    DropoutRngError: dropout is active and ``rng`` is ``None``.
  """
  if isinstance(rate, int | float) and not 0.0 <= rate <= 1.0:
    raise InvalidRateError(where, rate)
  if deterministic or (isinstance(rate, int | float) and rate == 0.0):
    return inputs
  if isinstance(rate, int | float) and rate == 1.0:
    return jnp.zeros_like(inputs)
  if rng is None:
    raise DropoutRngError(where)
  keep_prob = 1.0 - rate
  mask = keep_mask(rng, keep_prob, inputs.shape, broadcast_dims)
  return lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))
