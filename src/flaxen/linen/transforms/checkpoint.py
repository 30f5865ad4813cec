"""``nn.checkpoint`` / ``nn.remat``: jax.checkpoint over a Module's method.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> class MLP(nn.Module):
...   @nn.compact
...   def __call__(self, x):
...     return nn.remat(nn.Dense)(2)(x)  # activations are recomputed in the backward pass
>>> variables = MLP().init(jax.random.key(0), jnp.ones(3))
>>> variables["params"]["CheckpointDense_0"]["kernel"].shape
(3, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.checkpoint import checkpoint_lift
from flaxen.linen.transforms.lift import lift_target

__all__ = ["checkpoint", "remat"]


def checkpoint(target: Any, variables: CollectionFilter = True, rngs: CollectionFilter = True,
               concrete: bool = False, prevent_cse: bool = True,
               static_argnums: int | tuple[int, ...] = (),
               policy: Callable[..., bool] | None = None,
               methods: Sequence[str] | Mapping[str, Any] | None = None) -> Any:
  """A lifted ``jax.checkpoint``: recompute ``target``'s activations when differentiating.

  Args:
    target: a Module class, or a function taking a bound Module first.
    variables: the collections lifted into the checkpoint (default all).
    rngs: the rng streams lifted (default all).
    concrete: accepted for Flax compatibility; JAX no longer needs it (arguments that are
      not arrays are static anyway).
    prevent_cse, policy: as in ``jax.checkpoint``.
    static_argnums: positional arguments that are static (the module is argument 0).
    methods: the methods of a Module class to lift (default ``__call__``), or a dict
      ``{method: {argument: value}}`` giving a method its own arguments.

  Returns:
    The lifted Module subclass (named ``Checkpoint{Class}``) or function.
  """
  base = dict(variables=variables, rngs=rngs, prevent_cse=prevent_cse, policy=policy,
              static_argnums=static_argnums)

  def make(concrete: bool = False, **overrides: Any) -> Any:
    kw = {**base, **overrides}
    nums = kw.pop("static_argnums")
    return checkpoint_lift(**kw, static_argnums=(nums,) if isinstance(nums, int) else tuple(nums))

  del concrete
  return lift_target(target, make, methods)


remat = checkpoint
