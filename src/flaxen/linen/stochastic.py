"""Dropout as a Linen layer.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> layer = nn.Dropout(rate=0.5)
>>> y = layer.apply({}, jnp.ones(4), deterministic=False, rngs={'dropout': jax.random.key(0)})
>>> set(y.tolist()) <= {0.0, 2.0}
True
"""

from __future__ import annotations

from collections.abc import Sequence

from flaxen.linen.module import Module, compact, merge_param
from flaxen.linen.param_checks import layer_name
from flaxen.ops.stochastic import dropout
from flaxen.typing import Array, PRNGKey

__all__ = ["Dropout"]


class Dropout(Module):
  """Zeroes inputs with probability ``rate`` while training, scaling the rest by
  ``1 / (1 - rate)``.

  Attributes:
    rate: the probability of dropping an element.
    broadcast_dims: dims that share one mask (e.g. the time axis of a sequence).
    deterministic: if true, return the inputs unchanged (may be given to ``__call__``).
    rng_collection: the rng stream the mask is drawn from.
  """

  rate: float
  broadcast_dims: Sequence[int] = ()
  deterministic: bool | None = None
  rng_collection: str = "dropout"

  @compact
  def __call__(self, inputs: Array, deterministic: bool | None = None,
               rng: PRNGKey | None = None) -> Array:
    """Applies dropout; ``rng`` replaces a key from the ``rng_collection`` stream."""
    deterministic = merge_param("deterministic", self.deterministic, deterministic)
    if deterministic or self.rate == 0.0 or self.rate == 1.0:
      return dropout(inputs, self.rate, None, deterministic=deterministic,
                     where=layer_name(self))
    if rng is None:
      rng = self.make_rng(self.rng_collection)
    return dropout(inputs, self.rate, rng, broadcast_dims=self.broadcast_dims,
                   where=layer_name(self))
