"""Lifted differentiation: ``nn.vjp``, ``nn.jvp``, ``nn.grad``, ``nn.value_and_grad``,
``nn.custom_vjp``, with respect to a module's variables and the primal inputs.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> class Model(nn.Module):
...   @nn.compact
...   def __call__(self, x):
...     dense = nn.Dense(1)
...     if self.is_initializing():
...       dense(x)  # params created inside a transform get no gradient: create them first
...     y, bwd = nn.vjp(lambda mdl, x: mdl(x), dense, x)
...     params_grad, x_grad = bwd(jnp.ones_like(y))
...     return params_grad["params"]["kernel"]
>>> x = jnp.arange(3.0)
>>> variables = Model().init(jax.random.key(0), x)
>>> Model().apply(variables, x).ravel().tolist()  # d(x @ kernel)/d kernel = x
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.autodiff import custom_vjp_lift, jvp_lift, vjp_lift
from flaxen.linen.transforms.lift import lift_call

__all__ = ["vjp", "jvp", "grad", "value_and_grad", "custom_vjp"]


def vjp(fn: Callable[..., Any], mdl: Any, *primals: Any, has_aux: bool = False,
        reduce_axes: tuple[Any, ...] = (), vjp_variables: CollectionFilter = "params",
        variables: CollectionFilter = True, rngs: CollectionFilter = True,
        multi_scope: bool = False) -> Any:
  """A lifted ``jax.vjp`` of ``fn(mdl, *primals)``.

  Returns:
    ``(y, bwd)`` (``(y, bwd, aux)`` with ``has_aux``); ``bwd(cotangent)`` returns
    ``(variable_grads, *primal_grads)`` where ``variable_grads`` is
    ``{collection: tree}`` for the ``vjp_variables`` collections. ``bwd`` is a pytree
    (``jax.tree_util.Partial``), so it may be a ``custom_vjp`` residual.
  """
  del reduce_axes, multi_scope
  return lift_call(vjp_lift(has_aux, vjp_variables, variables, rngs), fn, mdl, primals, {})


def jvp(fn: Callable[..., Any], mdl: Any, primals: tuple[Any, ...], tangents: tuple[Any, ...],
        variable_tangents: dict[str, Any], variables: CollectionFilter = True,
        rngs: CollectionFilter = True) -> tuple[Any, Any]:
  """A lifted ``jax.jvp`` of ``fn(mdl, *primals)``.

  Args:
    variable_tangents: ``{collection: tree}`` tangents of the module's variables; the
      collections named here are differentiated, the others held constant.

  Returns:
    ``(y, y_tangent)``.
  """
  spec = jvp_lift(tuple(tangents), variable_tangents, tuple(variable_tangents), variables, rngs)
  return lift_call(spec, fn, mdl, primals, {})


def value_and_grad(fn: Callable[..., Any], mdl: Any, *primals: Any, has_aux: bool = False,
                   reduce_axes: tuple[Any, ...] = (), variables: CollectionFilter = True,
                   rngs: CollectionFilter = True) -> Any:
  """A lifted ``jax.value_and_grad`` of a scalar ``fn(mdl, *primals)`` w.r.t. the primals.

  Returns:
    ``(value, grads)`` (``((value, aux), grads)`` with ``has_aux``), ``grads`` one per
    primal. The variables are not differentiated (use :func:`vjp` for them).
  """
  out = vjp(fn, mdl, *primals, has_aux=has_aux, reduce_axes=reduce_axes, vjp_variables=False,
            variables=variables, rngs=rngs)
  y, bwd = out[0], out[1]
  grads = tuple(bwd(jnp.ones_like(y))[1:])
  return ((y, out[2]) if has_aux else y), grads


def grad(fn: Callable[..., Any], mdl: Any, *primals: Any, has_aux: bool = False,
         reduce_axes: tuple[Any, ...] = (), variables: CollectionFilter = True,
         rngs: CollectionFilter = True) -> Any:
  """A lifted ``jax.grad``: the gradients of a scalar ``fn(mdl, *primals)``, one per primal
  (``(grads, aux)`` with ``has_aux``)."""
  value, grads = value_and_grad(fn, mdl, *primals, has_aux=has_aux, reduce_axes=reduce_axes,
                                variables=variables, rngs=rngs)
  return (grads, value[1]) if has_aux else grads


def custom_vjp(fn: Callable[..., Any], forward_fn: Callable[..., Any],
               backward_fn: Callable[..., Any], grad_vars: CollectionFilter = "params",
               nondiff_argnums: tuple[int, ...] = ()) -> Callable[..., Any]:
  """A lifted ``jax.custom_vjp``: ``fn(mdl, *args)`` with a hand-written gradient.

  Args:
    fn: the function, ``fn(mdl, *args) -> y``.
    forward_fn: ``forward_fn(mdl, *args) -> (y, residuals)``.
    backward_fn: ``backward_fn(*nondiff_args, residuals, y_cotangent) ->
      (variable_grads, *arg_grads)`` with ``variable_grads`` as ``{collection: tree}`` for
      the ``grad_vars`` collections (``nn.vjp``'s backward function returns exactly that)
      and one gradient per differentiable argument.
    grad_vars: the collections differentiated.
    nondiff_argnums: arguments without gradients, the module counted as 0 (as in
      ``jax.custom_vjp`` of ``fn``, and in Flax); they are static.

  Returns:
    ``wrapper(mdl, *args)``. During ``init`` it calls ``fn`` directly (creating variables).
  """
  spec = custom_vjp_lift(forward_fn, backward_fn, grad_vars, tuple(nondiff_argnums))

  @functools.wraps(fn)
  def wrapper(mdl: Any, *args: Any) -> Any:
    return lift_call(spec, fn, mdl, args, {})

  return wrapper
