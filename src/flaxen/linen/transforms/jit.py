"""``nn.jit``: jax.jit over a Module's method, cached on the module and static arguments.

The compiled function is keyed by everything that is not an array: the module's
construction attributes, its path, the static arguments and the mutability, so calling the
same module again with arrays of the same shapes reuses the compiled program.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> JitDense = nn.jit(nn.Dense)
>>> variables = JitDense(2).init(jax.random.key(0), jnp.ones(3))
>>> JitDense(2).apply(variables, jnp.ones(3)).shape
(2,)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.jit import jit_lift
from flaxen.linen.transforms.lift import body, lift_target

__all__ = ["jit"]


def jit(target: Any, variables: CollectionFilter = True, rngs: CollectionFilter = True,
        static_argnums: int | Sequence[int] = (), static_argnames: str | Sequence[str] = (),
        donate_argnums: int | Sequence[int] = (), device: Any = None, backend: str | None = None,
        methods: Sequence[str] | None = None) -> Any:
  """A lifted ``jax.jit``.

  Args:
    target: a Module class, or a function taking a bound Module first.
    variables: the collections lifted (default all).
    rngs: the rng streams lifted (default all).
    static_argnums: positional arguments that are static (the module is argument 0);
      arguments that are not arrays are static anyway.
    static_argnames: keyword arguments that are static.
    donate_argnums: accepted for Flax compatibility; the lifted function's arguments are
      snapshots the caller still holds, so nothing is donated.
    device, backend: accepted for Flax compatibility (JAX places by the inputs' sharding).
    methods: the methods of a Module class to lift (default ``__call__``).

  Returns:
    The lifted Module subclass (named ``Jit{Class}``) or function.
  """
  del donate_argnums, device, backend
  nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
  names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
  return lift_target(target, jit_lift(body, variables, rngs, nums, names), methods)
