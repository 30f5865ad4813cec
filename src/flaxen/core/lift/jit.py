"""``jit``: jax.jit of a scope function, compiled once per call structure.

The compiled function is keyed by everything that is not an array: the scope function,
the mutability and flags (init or apply), the hash key and the static arguments, but not
the scopes' paths: their variables and rng keys are inputs, and rngs drawn inside fold only
the path below the lifted scope. Calling it again, on the same scope or another one, with
arrays of the same shapes reuses the traced and compiled program.

>>> import jax, jax.numpy as jnp
>>> from flaxen import core
>>> @core.jit
... def dense(scope, module_hash, x):
...   return x @ scope.param("w", jax.nn.initializers.ones, (x.shape[-1], 2))
>>> y, variables = core.init(dense)(jax.random.key(0), None, jnp.ones(3))
>>> core.apply(dense)(variables, None, jnp.ones(3)).tolist()
[3.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax

from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.engine import Lift
from flaxen.core.lift.scopes import body, lift_scopes

__all__ = ["jit", "jit_lift"]


class _TraceKey:
  """The static argument of the compiled body: equal for calls whose traces are the same
  (``static.cache_key()``, which leaves out where the lifted scopes sit), and carrying the
  call's own ``static`` for the body to trace with when there is no trace yet."""

  __slots__ = ("static", "key", "_hash")

  def __init__(self, static: Any):
    self.static = static
    self.key = static.cache_key()
    self._hash = hash(self.key)

  def __hash__(self) -> int:
    return self._hash

  def __eq__(self, other: object) -> bool:
    return isinstance(other, _TraceKey) and self._hash == other._hash and self.key == other.key


def jit_lift(pure_body: Callable[..., Any], variables: CollectionFilter,
             rngs: CollectionFilter, static_argnums: tuple[int, ...],
             static_argnames: tuple[str, ...]) -> Lift:
  """The :class:`Lift` of a jit (shared by ``nn.jit``): ``pure_body(static, ...)`` compiled
  once per trace key, so sibling modules of the same class and fields share one trace and
  one compiled program (their variables and rng keys are its inputs)."""
  compiled = jax.jit(lambda key, *a: pure_body(key.static, *a), static_argnums=0)

  def transform(_: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    return compiled(_TraceKey(static), v, r, a, k)

  return Lift("jit", transform, variables=variables, rngs=rngs, static_argnums=static_argnums,
              static_argnames=static_argnames, relative_rngs=True)


def _ints(x: int | Iterable[int]) -> tuple[int, ...]:
  return (x,) if isinstance(x, int) else tuple(x)


def jit(fn: Callable[..., Any], variables: CollectionFilter = True,
        rngs: CollectionFilter = True, static_argnums: int | Iterable[int] = (),
        static_argnames: str | Iterable[str] = (), donate_argnums: int | Iterable[int] = (),
        device: Any = None, backend: str | None = None) -> Callable[..., Any]:
  """A lifted ``jax.jit`` of ``fn(scope, module_hash, *args)``.

  As in Flax, the second argument is a hashable key (Linen passes a hash of the module) that
  is static and part of the cache key; ``fn`` receives it too.

  Args:
    fn: the scope function.
    variables: the collections lifted (default all).
    rngs: the rng streams lifted (default all).
    static_argnums: positional arguments that are static, the scope counted as 0 and the
      hash key not counted (1 is the first argument after it); arguments that are not
      arrays are static anyway.
    static_argnames: keyword arguments that are static.
    donate_argnums: accepted for Flax compatibility; the lifted function's arguments are
      snapshots the caller still holds, so nothing is donated.
    device, backend: accepted for Flax compatibility (JAX places by the inputs' sharding).

  Returns:
    ``wrapper(scope, module_hash, *args)``.
  """
  del donate_argnums, device, backend
  nums = (1, *(i + 1 for i in _ints(static_argnums) if i > 0))
  names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
  spec = jit_lift(body, variables, rngs, nums, names)

  def wrapper(scope: Any, module_hash: Any, *args: Any, **kwargs: Any) -> Any:
    return lift_scopes(spec, fn, scope, (module_hash, *args), kwargs)

  return wrapper
