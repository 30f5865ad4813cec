"""``nn.fold_rngs``: run a Module method on fresh rng keys without any JAX transform.

The call is lifted exactly as ``nn.jit`` lifts it (one ``make_rng`` per stream and scope,
bound into a fresh root), but runs eagerly, so the method draws the same keys it would draw
under ``nn.jit``: switching a method between jitted and not keeps its randomness.

>>> import jax
>>> import flaxen.linen as nn
>>> class Noise(nn.Module):
...   def __call__(self, jit):
...     draw = lambda m: jax.random.normal(m.make_rng("noise"), (2,))
...     return (nn.jit(draw) if jit else nn.fold_rngs(draw))(self)
>>> rngs = {"noise": jax.random.key(0)}
>>> a = Noise().apply({}, True, rngs=rngs)
>>> b = Noise().apply({}, False, rngs=rngs)
>>> bool((a == b).all())
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flaxen.core.filters import CollectionFilter
from flaxen.linen.transforms.lift import Lift, lift_target

__all__ = ["fold_rngs"]


def fold_rngs(target: Any, variables: CollectionFilter = True, rngs: CollectionFilter = True,
              methods: Sequence[str] | None = None) -> Any:
  """Lift ``target`` like ``nn.jit`` does, without compiling it.

  Args:
    target: a Module class, or a function taking a bound Module first.
    variables: the collections lifted (default all).
    rngs: the rng streams lifted (default all).
    methods: the methods of a Module class to lift (default ``__call__``).

  Returns:
    The lifted Module subclass (named ``FoldRngs{Class}``) or function.
  """

  def transform(body: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    del static
    return body(v, r, a, k)

  spec = Lift("fold_rngs", transform, variables=variables, rngs=rngs, relative_rngs=True)
  return lift_target(target, spec, methods, prefix="FoldRngs")
