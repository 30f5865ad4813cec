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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.control_flow import fori_loop_lift, switch_lift, while_loop_lift
from flaxen.linen.transforms.lift import lift_call

__all__ = ["cond", "switch", "while_loop", "fori_loop"]


def switch(index: Any, branches: Sequence[Callable[..., Any]], mdl: Any, *operands: Any,
           variables: CollectionFilter = True, rngs: CollectionFilter = True) -> Any:
  """A lifted ``jax.lax.switch``: run ``branches[index](mdl, *operands)``."""
  spec = switch_lift(index, branches, variables, rngs)
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
  spec = while_loop_lift(cond_fn, carry_variables, split_rngs)
  return lift_call(spec, body_fn, mdl, (init,), {})


def fori_loop(lower: int, upper: int, body_fun: Callable[..., Any], mdl: Any, init_val: Any,
              carry_variables: CollectionFilter = False,
              broadcast_variables: CollectionFilter = True,
              split_rngs: Mapping[CollectionFilter, bool] = {}) -> Any:  # noqa: B006
  """A lifted ``jax.lax.fori_loop``: ``body_fun(i, mdl, val) -> val`` for ``lower <= i <
  upper`` (see :func:`while_loop` for the variable arguments). As with
  ``jax.lax.fori_loop``, Python int bounds give a scan, which is reverse differentiable."""
  del broadcast_variables
  spec = fori_loop_lift(lower, upper, carry_variables, split_rngs)
  # ``lower`` stands in for the index, so the arguments keep their structure in the loop.
  return lift_call(spec, _index_first, mdl, (lower, init_val), {"body_fun": body_fun})


def _index_first(mdl: Any, i: Any, val: Any, body_fun: Callable[..., Any]) -> Any:
  return body_fun(i, mdl, val)
