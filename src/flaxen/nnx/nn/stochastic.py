"""Dropout as an NNX layer.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> layer = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=0))
>>> set(layer(jnp.ones(8)).tolist()) <= {0.0, 2.0}
True
>>> layer.eval()(jnp.ones(2)).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from flaxen.errors.layers import DropoutRngError
from flaxen.nnx.module import Module
from flaxen.nnx.rnglib import Rngs, RngStream
from flaxen.ops.stochastic import dropout

__all__ = ["Dropout"]


class Dropout(Module):
  """Zeroes inputs with probability ``rate`` while training, scaling the rest by
  ``1 / (1 - rate)``.

  Args:
    rate: the probability of dropping an element.
    broadcast_dims: dims that share one mask (e.g. the time axis of a sequence).
    deterministic: return the inputs unchanged (flipped by ``model.eval()`` /
      ``model.train()``; may be overridden per call).
    rng_collection: the stream of ``rngs`` the masks are drawn from.
    rngs: where to draw masks from. The layer keeps a stream of its own (``self.rngs``,
      with its own key and count), forked from the ``rng_collection`` stream of an
      ``Rngs`` or from an ``RngStream``: forking draws one key from the caller's stream,
      so ``nnx.split_rngs`` / ``StateAxes`` over the layer act on the layer's stream, and
      ``nnx.reseed`` of that stream name restarts it. May instead be given per call.
  """

  def __init__(self, rate: float, *, broadcast_dims: Sequence[int] = (),
               deterministic: bool = False, rng_collection: str = "dropout",
               rngs: Rngs | RngStream | None = None):
    self.rate = rate
    self.broadcast_dims = tuple(broadcast_dims)
    self.deterministic = deterministic
    self.rng_collection = rng_collection
    if isinstance(rngs, Rngs):
      rngs = rngs[rng_collection].fork()
    elif isinstance(rngs, RngStream):
      rngs = rngs.fork()
    self.rngs = rngs

  def set_view(self, deterministic: bool | None = None, **kwargs: Any) -> dict[str, Any]:
    """For ``nnx.view``: sets ``deterministic`` when given; returns the other arguments.

    Args:
      deterministic: return the inputs unchanged.
    """
    if deterministic is not None:
      self.deterministic = deterministic
    return kwargs

  def __call__(self, inputs: jax.Array, *, deterministic: bool | None = None,
               rngs: Rngs | RngStream | jax.Array | None = None) -> jax.Array:
    """Applies dropout.

    Args:
      inputs: the array to drop from.
      deterministic: overrides the attribute of the same name.
      rngs: an ``Rngs``, an ``RngStream`` or a key to draw this call's mask from instead of
        the layer's own ``rngs``.

    Raises:
      DropoutRngError: dropout is active and neither the layer nor the call has rngs.
    """
    where = type(self).__name__
    if deterministic is None:
      deterministic = self.deterministic
    if deterministic or self.rate in (0.0, 1.0):
      return dropout(inputs, self.rate, None, deterministic=deterministic, where=where)
    rngs = self.rngs if rngs is None else rngs
    if rngs is None:
      raise DropoutRngError(where, self.rng_collection)
    if isinstance(rngs, Rngs):
      key = rngs[self.rng_collection]()
    elif isinstance(rngs, RngStream):
      key = rngs()
    else:
      key = rngs
    return dropout(inputs, self.rate, key, broadcast_dims=self.broadcast_dims, where=where)
