"""Lifted control flow of scope functions: ``cond``, ``switch``, ``while_loop``.

Branches and loop bodies receive the scope rebuilt inside the JAX primitive. Every branch
must create the same variables. In loops, the ``carry_variables`` collections are threaded
through the iterations (mutable, fixed shapes); the others are read-only, and split rng
streams draw a fresh key per iteration.

>>> import jax, jax.numpy as jnp
>>> from flaxen import core
>>> def count_to(scope, n):
...   scope.put_variable("state", "i", 0)
...   cond_fn = lambda scope, c: scope.get_variable("state", "i") < n
...   def body_fn(scope, c):
...     scope.put_variable("state", "i", scope.get_variable("state", "i") + 1)
...     return c * 2
...   return core.while_loop(cond_fn, body_fn, scope, 1, carry_variables="state")
>>> y, variables = core.apply(count_to, mutable=True)({}, 3)
>>> int(y), int(variables["state"]["i"])
(8, 3)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from flaxen.core.filters import CollectionFilter, in_filter
from flaxen.core.lift.engine import Lift
from flaxen.core.lift.scopes import lift_scopes

__all__ = ["cond", "switch", "while_loop", "switch_lift", "while_loop_lift", "fori_loop_lift"]


def switch_lift(index: Any, branches: Sequence[Callable[..., Any]], variables: CollectionFilter,
                rngs: CollectionFilter) -> Lift:
  """The :class:`Lift` of a switch (shared by ``nn.switch`` / ``nn.cond``)."""

  def transform(body: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    def run(fn: Callable[..., Any], ops: Any) -> Any:
      return body(v, r, ops, k, fn=fn)

    return jax.lax.switch(index, [functools.partial(run, fn) for fn in branches], a)

  return Lift("switch", transform, variables=variables, rngs=rngs)


def _loop_lift(name: str, transform: Callable[..., Any], carry_variables: CollectionFilter,
               split_rngs: Mapping[CollectionFilter, bool]) -> Lift:
  split = tuple(s for s, v in split_rngs.items() if v)
  return Lift(name, transform, variable_groups=(carry_variables,), rng_groups=split,
              mutable=carry_variables, why="only carry_variables change in the loop")


def _stepper(body: Callable[..., Any], v: Any, r: Any, k: Any) -> Callable[..., Any]:
  """One loop iteration ``(carried variables, split keys, args) -> (carried, keys, y)``:
  the carried collections keep their structure, split rng streams draw a fresh key."""

  def step(carried: Any, keys: Any, args: tuple[Any, ...]) -> Any:
    pairs = jax.tree.map(jax.random.split, keys)
    now = jax.tree.map(lambda p: p[1], pairs)
    y, mutated = body((carried, *v[1:]), (*now, r[-1]), args, k)
    carried = {col: mutated[0].get(col, value) for col, value in carried.items()}
    return carried, jax.tree.map(lambda p: p[0], pairs), y

  return step


def _carried_out(static: Any, carried: Any) -> tuple[dict[str, Any]]:
  return ({col: t for col, t in carried.items() if in_filter(static.outer_mutable, col)},)


def while_loop_lift(cond_fn: Callable[..., Any], carry_variables: CollectionFilter,
                    split_rngs: Mapping[CollectionFilter, bool]) -> Lift:
  """The :class:`Lift` of a while loop (shared by ``nn.while_loop``); the body is the lifted
  function, whose only argument after the module or scope is the loop carry."""

  def transform(body: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    def keep_going(state: Any) -> Any:
      carried, keys, c = state
      variables, rngs = (carried, *v[1:]), (*keys, r[-1])
      return body(variables, rngs, (c,), k, fn=cond_fn, mutable=False)[0]

    step = _stepper(body, v, r, k)
    carried, _, c = jax.lax.while_loop(keep_going, lambda s: step(*s[:2], s[2:]),
                                       (v[0], tuple(r[:-1]), a[0]))
    return c, _carried_out(static, carried)

  return _loop_lift("while_loop", transform, carry_variables, split_rngs)


def fori_loop_lift(lower: int, upper: int, carry_variables: CollectionFilter,
                   split_rngs: Mapping[CollectionFilter, bool]) -> Lift:
  """The :class:`Lift` of a fori loop (``nn.fori_loop``): the lifted function takes
  ``(index, val)`` after the module; ``lower`` stands in for the index when lifting."""

  def transform(body: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    step = _stepper(body, v, r, k)
    carried, _, val = jax.lax.fori_loop(lower, upper, lambda i, s: step(s[0], s[1], (i, s[2])),
                                        (v[0], tuple(r[:-1]), a[1]))
    return val, _carried_out(static, carried)

  return _loop_lift("fori_loop", transform, carry_variables, split_rngs)


def switch(index: Any, branches: Sequence[Callable[..., Any]], scope: Any, *operands: Any,
           variables: CollectionFilter = True, rngs: CollectionFilter = True) -> Any:
  """A lifted ``jax.lax.switch``: run ``branches[index](scope, *operands)``."""
  spec = switch_lift(index, branches, variables, rngs)
  return lift_scopes(spec, branches[0], scope, operands, {})


def cond(pred: Any, true_fun: Callable[..., Any], false_fun: Callable[..., Any], scope: Any,
         *operands: Any, variables: CollectionFilter = True,
         rngs: CollectionFilter = True) -> Any:
  """A lifted ``jax.lax.cond``: ``true_fun(scope, *operands)`` if ``pred`` else
  ``false_fun(scope, *operands)``."""
  return switch(jax.numpy.asarray(pred, bool).astype(int), (false_fun, true_fun), scope,
                *operands, variables=variables, rngs=rngs)


def while_loop(cond_fn: Callable[..., Any], body_fn: Callable[..., Any], scope: Any, init: Any,
               carry_variables: CollectionFilter = False,
               broadcast_variables: CollectionFilter = True,
               split_rngs: Mapping[CollectionFilter, bool] = {}) -> Any:  # noqa: B006
  """A lifted ``jax.lax.while_loop`` of ``body_fn(scope, c) -> c`` while ``cond_fn(scope, c)``.

  Args:
    cond_fn: ``cond_fn(scope, c) -> bool``; it sees the variables read-only.
    body_fn: ``body_fn(scope, c) -> c``.
    scope: a Scope (or a pytree of Scopes).
    init: the initial carry.
    carry_variables: collections updated by the body (their shapes must not change, so
      they cannot be created in the loop: call ``body_fn`` once first during init).
    broadcast_variables: the read-only collections (all the others).
    split_rngs: ``{stream filter: bool}``; split streams draw a fresh key per iteration.

  Returns:
    The final carry.
  """
  del broadcast_variables  # every collection that is not carried is read-only
  spec = while_loop_lift(cond_fn, carry_variables, split_rngs)
  return lift_scopes(spec, body_fn, scope, (init,), {})
