"""Dropout: zero each element with probability ``rate``, scale survivors by ``1/(1-rate)``.

>>> import jax, jax.numpy as jnp
>>> y = dropout(jnp.ones((2, 4)), 0.5, jax.random.key(0), broadcast_dims=(0,))
>>> bool((y[0] == y[1]).all()) and set(y.ravel().tolist()) <= {0.0, 2.0}
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from flaxen.errors.layers import DropoutRngError, InvalidRateError
from flaxen.typing import Array, PRNGKey

__all__ = ["dropout", "keep_mask", "explicit_spec"]


def keep_mask(rng: PRNGKey, keep_prob: float, shape: Sequence[int],
              broadcast_dims: Sequence[int] = (), out_sharding: Any = None) -> Array:
  """A boolean mask of ``shape``, ``True`` with probability ``keep_prob``, drawn once along
  ``broadcast_dims`` (size 1 there) and broadcast to ``shape``. ``out_sharding``: the
  mask's ``PartitionSpec`` under an explicit-sharding mesh (a broadcast dim is drawn
  unsharded)."""
  draw_shape = list(shape)
  for dim in broadcast_dims:
    draw_shape[dim] = 1
  if out_sharding is None:
    return jnp.broadcast_to(jax.random.bernoulli(rng, keep_prob, draw_shape), shape)
  bcast = {d % len(shape) for d in broadcast_dims}
  draw_spec = P(*(None if d in bcast else s for d, s in enumerate(out_sharding)))
  mask = jax.random.bernoulli(rng, keep_prob, draw_shape, out_sharding=draw_spec)
  return jnp.broadcast_to(mask, shape, out_sharding=out_sharding)


def explicit_spec(x: Array) -> Any:
  """``x``'s ``PartitionSpec`` (padded to its rank) when it is sharded over an explicit
  mesh axis, else ``None``: arrays made to combine with it must then say their sharding."""
  sharding = getattr(jax.typeof(x), "sharding", None)
  mesh = getattr(sharding, "mesh", None)
  if mesh is None or not getattr(mesh, "explicit_axes", ()):
    return None
  spec = tuple(sharding.spec) + (None,) * (x.ndim - len(sharding.spec))
  return P(*spec) if any(s is not None for s in spec) else None


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
  mask = keep_mask(rng, keep_prob, inputs.shape, broadcast_dims, explicit_spec(inputs))
  return lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))
