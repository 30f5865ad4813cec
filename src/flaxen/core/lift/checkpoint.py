"""``checkpoint`` / ``remat`` (jax.checkpoint of a scope function) and ``remat_scan``.

>>> import jax, jax.numpy as jnp
>>> from flaxen import core
>>> def layer(scope, x):
...   return jnp.tanh(x @ scope.param("w", jax.nn.initializers.normal(), (2, 2)))
>>> stack = core.remat_scan(layer, lengths=(2, 3))  # six layers, params stacked per level
>>> y, variables = core.init(stack)(jax.random.key(0), jnp.ones(2))
>>> variables["params"]["w"].shape
(2, 3, 2, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.engine import Lift
from flaxen.core.lift.scan import scan
from flaxen.core.lift.scopes import lift_scopes

__all__ = ["checkpoint", "remat", "remat_scan", "checkpoint_lift", "nest_remat_scan"]


def checkpoint_lift(variables: CollectionFilter, rngs: CollectionFilter, prevent_cse: bool,
                    policy: Callable[..., bool] | None, static_argnums: tuple[int, ...]) -> Lift:
  """The :class:`Lift` of a checkpoint (shared by ``nn.checkpoint``); ``static_argnums``
  count the module or scope as 0."""

  def transform(body: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    return jax.checkpoint(body, prevent_cse=prevent_cse, policy=policy)(v, r, a, k)

  return Lift("checkpoint", transform, variables=variables, rngs=rngs,
              static_argnums=static_argnums)


def checkpoint(fn: Callable[..., Any], variables: CollectionFilter = True,
               rngs: CollectionFilter = True, concrete: bool = False, prevent_cse: bool = True,
               static_argnums: int | tuple[int, ...] = (),
               policy: Callable[..., bool] | None = None) -> Callable[..., Any]:
  """A lifted ``jax.checkpoint``: ``fn(scope, *args)``'s activations are recomputed when
  differentiating.

  Args:
    fn: the scope function.
    variables: the collections lifted (default all).
    rngs: the rng streams lifted (default all).
    concrete: accepted for Flax compatibility; arguments that are not arrays are static.
    prevent_cse, policy: as in ``jax.checkpoint``.
    static_argnums: arguments after the scope (counted from 0) that are static.

  Returns:
    ``wrapper(scope, *args)``.
  """
  del concrete
  nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
  spec = checkpoint_lift(variables, rngs, prevent_cse, policy, tuple(i + 1 for i in nums))

  def wrapper(scope: Any, *args: Any, **kwargs: Any) -> Any:
    return lift_scopes(spec, fn, scope, args, kwargs)

  return wrapper


remat = checkpoint


def nest_remat_scan(body_fn: Callable[..., Any], lengths: Sequence[int],
                    scan_fn: Callable[..., Any], remat_fn: Callable[..., Any],
                    policy: Callable[..., bool] | None, **scan_kwargs: Any) -> Callable[..., Any]:
  """``body_fn(target, x) -> x`` repeated ``prod(lengths)`` times as nested scans of
  rematerialized steps (``scan_fn`` / ``remat_fn``: Linen's or core's transforms)."""

  def step(target: Any, x: Any) -> Any:
    return body_fn(target, x), None

  for n in reversed(lengths):
    step = scan_fn(remat_fn(step, policy=policy, prevent_cse=False), length=n, **scan_kwargs)

  def run(target: Any, x: Any) -> Any:
    return step(target, x)[0]

  return run


def remat_scan(body_fn: Callable[..., Any], lengths: Sequence[int],
               policy: Callable[..., bool] | None = None,
               variable_broadcast: CollectionFilter = False,
               variable_carry: CollectionFilter = False,
               variable_axes: Mapping[CollectionFilter, int] = {True: 0},  # noqa: B006
               split_rngs: Mapping[CollectionFilter, bool] = {True: True},  # noqa: B006
               ) -> Callable[..., Any]:
  """Nested scans of a rematerialized ``body_fn(scope, x) -> x``: ``prod(lengths)`` steps.

  Each level is ``scan(remat(...))``, so the gradient keeps O(sum(lengths)) activations
  instead of O(prod(lengths)); the scanned variables get one leading axis per level.

  Returns:
    ``wrapper(scope, x) -> x``.
  """
  return nest_remat_scan(body_fn, lengths, scan, checkpoint, policy,
                         variable_broadcast=variable_broadcast, variable_carry=variable_carry,
                         variable_axes=variable_axes, split_rngs=split_rngs)
