"""``nn.jit``: jax.jit over a Module's method, cached on the module and static arguments.

The compiled function is keyed by everything that is not an array: the module's class and
construction attributes (not its name or path), the static arguments and the mutability.
Calling the same module again, or a sibling of the same class and attributes, with arrays of
the same shapes reuses the traced and compiled program: each module's variables and rng
keys are its inputs and outputs, and rngs drawn inside fold only the path below the module.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> JitDense = nn.jit(nn.Dense)
>>> variables = JitDense(2).init(jax.random.key(0), jnp.ones(3))
>>> JitDense(2).apply(variables, jnp.ones(3)).shape
(2,)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.jit import jit_lift
from flaxen.linen.transforms.lift import body, lift_target

__all__ = ["jit"]


def jit(target: Any, variables: CollectionFilter = True, rngs: CollectionFilter = True,
        static_argnums: int | Sequence[int] = (), static_argnames: str | Sequence[str] = (),
        donate_argnums: int | Sequence[int] = (), device: Any = None, backend: str | None = None,
        methods: Sequence[str] | Mapping[str, Any] | None = None) -> Any:
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
    methods: the methods of a Module class to lift (default ``__call__``), or a dict
      ``{method: {argument: value}}`` giving a method its own arguments.

  Returns:
    The lifted Module subclass (named ``Jit{Class}``) or function.
  """
  del donate_argnums, device, backend
  base = dict(variables=variables, rngs=rngs, static_argnums=static_argnums,
              static_argnames=static_argnames)

  def make(donate_argnums: Any = (), device: Any = None, backend: Any = None,
           **overrides: Any) -> Any:
    kw = {**base, **overrides}
    nums, names = kw["static_argnums"], kw["static_argnames"]
    return jit_lift(body, kw["variables"], kw["rngs"],
                    (nums,) if isinstance(nums, int) else tuple(nums),
                    (names,) if isinstance(names, str) else tuple(names))

  return lift_target(target, make, methods)
