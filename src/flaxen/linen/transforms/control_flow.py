"""Lifted control flow: ``nn.cond``, ``nn.switch``, ``nn.while_loop``, ``nn.fori_loop``.

Branches and loop bodies receive the module rebuilt inside the JAX primitive, so they can use
its variables and rngs. Every branch must create the same variables (during ``init`` all
branches are traced and their outputs must have one structure). In loops, the
``carry_variables`` collections are threaded through the iterations (mutable, fixed shapes);
the others are read-only.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> class Gate(nn.Module):
...   @nn.compact
...   def __call__(self, x, flag):
...     return nn.cond(flag, lambda m, x: m(x), lambda m, x: -m(x), nn.Dense(2), x)
>>> variables = Gate().init(jax.random.key(0), jnp.ones(2), True)
>>> a = Gate().apply(variables, jnp.ones(2), True)
>>> b = Gate().apply(variables, jnp.ones(2), False)
>>> bool(jnp.allclose(a, -b))
True
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from flaxen.core.filters import CollectionFilter, in_filter
from flaxen.linen.transforms.lift import Lift, lift_call

__all__ = ["cond", "switch", "while_loop", "fori_loop"]


def switch(index: Any, branches: Sequence[Callable[..., Any]], mdl: Any, *operands: Any,
           variables: CollectionFilter = True, rngs: CollectionFilter = True) -> Any:
  """A lifted ``jax.lax.switch``: run ``branches[index](mdl, *operands)``."""

  def transform(body: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    def run(fn: Callable[..., Any], ops: Any) -> Any:
      return body(v, r, ops, k, fn=fn)

    return jax.lax.switch(index, [functools.partial(run, fn) for fn in branches], a)

  spec = Lift("switch", transform, variables=variables, rngs=rngs)
  return lift_call(spec, branches[0], mdl, operands, {})


def cond(pred: Any, true_fun: Callable[..., Any], false_fun: Callable[..., Any], mdl: Any,
         *operands: Any, variables: CollectionFilter = True,
         rngs: CollectionFilter = True) -> Any:
  """A lifted ``jax.lax.cond``: ``true_fun(mdl, *operands)`` if ``pred`` else ``false_fun``."""
  return switch(jax.numpy.asarray(pred, bool).astype(int), (false_fun, true_fun), mdl,
                *operands, variables=variables, rngs=rngs)


def while_loop(cond_fn: Callable[..., Any], body_fn: Callable[..., Any], mdl: Any, init: Any,
               carry_variables: CollectionFilter = False,
               broadcast_variables: CollectionFilter = True,
               split_rngs: Mapping[CollectionFilter, bool] = {}) -> Any:  # noqa: B006
  """A lifted ``jax.lax.while_loop`` of ``body_fn(mdl, c) -> c`` while ``cond_fn(mdl, c)``.

  Args:
    carry_variables: collections updated by the body (their shapes must not change, so
      they cannot be created in the loop: call ``body_fn`` once first during init).
    broadcast_variables: the read-only collections (all the others).
    split_rngs: ``{stream filter: bool}``; split streams draw a fresh key per iteration.
  """
  del broadcast_variables  # every collection that is not carried is read-only
  split = tuple(s for s, v in split_rngs.items() if v)

  def transform(body: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    def variables(carried: Any) -> Any:
      return (carried, *v[1:])

    def keep_going(state: Any) -> Any:
      carried, keys, c = state
      return body(variables(carried), (*keys, r[-1]), (c,), k, fn=cond_fn, mutable=False)[0]

    def step(state: Any) -> Any:
      carried, keys, c = state
      pairs = jax.tree.map(jax.random.split, keys)
      now = jax.tree.map(lambda p: p[1], pairs)
      c, mutated = body(variables(carried), (*now, r[-1]), (c,), k)
      carried = {col: mutated[0].get(col, value) for col, value in carried.items()}
      return carried, jax.tree.map(lambda p: p[0], pairs), c

    carried, _, c = jax.lax.while_loop(keep_going, step, (v[0], tuple(r[:-1]), a[0]))
    return c, ({col: t for col, t in carried.items() if in_filter(static.outer_mutable, col)},)

  spec = Lift("while_loop", transform, variable_groups=(carry_variables,), rng_groups=split,
              mutable=carry_variables, why="only carry_variables change in the loop")
  return lift_call(spec, body_fn, mdl, (init,), {})


def fori_loop(lower: int, upper: int, body_fun: Callable[..., Any], mdl: Any, init_val: Any,
              carry_variables: CollectionFilter = False,
              broadcast_variables: CollectionFilter = True,
              split_rngs: Mapping[CollectionFilter, bool] = {}) -> Any:  # noqa: B006
  """A lifted ``jax.lax.fori_loop``: ``body_fun(i, mdl, val) -> val`` for ``lower <= i <
  upper`` (see :func:`while_loop` for the variable arguments)."""

  def keep_going(mdl: Any, state: Any) -> Any:
    return state[0] < upper

  def step(mdl: Any, state: Any) -> Any:
    i, val = state
    return i + 1, body_fun(i, mdl, val)

  start = jax.numpy.asarray(lower)
  return while_loop(keep_going, step, mdl, (start, init_val), carry_variables=carry_variables,
                    broadcast_variables=broadcast_variables, split_rngs=split_rngs)[1]
