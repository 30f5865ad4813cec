"""Lifted differentiation of scope functions: ``vjp``, ``jvp``, ``custom_vjp``.

Variable cotangents and tangents are ``{collection: tree}`` dicts, one per lifted scope
(a pytree of them when a pytree of scopes is lifted). ``static.grads_out`` and
``static.tangents_in`` convert between that form and the engine's per-root groups, so
Linen's transforms (of Modules) run the same code.

>>> import jax, jax.numpy as jnp
>>> from flaxen import core
>>> def scale(scope, x):
...   return scope.param("s", jax.nn.initializers.ones, ()) * x
>>> def f(scope, x):
...   y, bwd = core.vjp(scale, scope, x)
...   return bwd(jnp.ones_like(y))
>>> x = jnp.arange(3.0)
>>> _, variables = core.init(f)(jax.random.key(0), x)
>>> params_grad, x_grad = core.apply(f)(variables, x)
>>> float(params_grad["params"]["s"]), x_grad.tolist()  # d(s*x)/ds summed, d/dx = s
(3.0, [1.0, 1.0, 1.0])
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.engine import Lift, restore_static
from flaxen.core.lift.scopes import lift_scopes
from flaxen.core.scope import Scope

__all__ = ["vjp", "jvp", "value_and_grad", "custom_vjp", "vjp_lift", "jvp_lift", "custom_vjp_lift"]


def _cotangents(grads_out: Callable[..., Any], vjp_fn: Callable[..., Any],
                ct: Any) -> tuple[Any, ...]:
  variables_ct, *primals_ct = vjp_fn(ct)
  return (grads_out(variables_ct), *primals_ct)


def vjp_lift(has_aux: bool, vjp_variables: CollectionFilter, variables: CollectionFilter,
             rngs: CollectionFilter) -> Lift:
  """The :class:`Lift` of a vjp (shared by ``nn.vjp``)."""

  def transform(body: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    def f(diff_vars: Any, *prims: Any) -> Any:
      y, mutated = body((diff_vars, *v[1:]), r, prims, k)
      return (y[0], (y[1], mutated)) if has_aux else (y, (None, mutated))

    y, vjp_fn, (aux, mutated) = jax.vjp(f, v[0], *a, has_aux=True)
    # a pytree (Partial), so that it may be returned as a custom_vjp residual
    bwd = jax.tree_util.Partial(functools.partial(_cotangents, static.grads_out), vjp_fn)
    return ((y, bwd, aux) if has_aux else (y, bwd)), mutated

  return Lift("vjp", transform, variable_groups=(vjp_variables,), variables=variables, rngs=rngs)


def jvp_lift(tangents: tuple[Any, ...], variable_tangents: Any, cols: tuple[str, ...],
             variables: CollectionFilter, rngs: CollectionFilter) -> Lift:
  """The :class:`Lift` of a jvp (shared by ``nn.jvp``); ``cols`` are the differentiated
  collections."""

  def transform(body: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    def f(diff_vars: Any, *prims: Any) -> Any:
      return body((diff_vars, *v[1:]), r, prims, k)

    var_t = static.tangents_in(variable_tangents, tuple(v[0]))
    y, y_t, mutated = jax.jvp(f, (v[0], *a), (var_t, *tangents), has_aux=True)
    return (y, y_t), mutated

  return Lift("jvp", transform, variable_groups=(cols,), variables=variables, rngs=rngs)


def custom_vjp_lift(forward_fn: Callable[..., Any], backward_fn: Callable[..., Any],
                    grad_vars: CollectionFilter, nondiff_argnums: tuple[int, ...]) -> Lift:
  """The :class:`Lift` of a custom_vjp (shared by ``nn.custom_vjp``); ``nondiff_argnums``
  count the module or scope as 0, as in Flax."""
  nondiff = tuple(nondiff_argnums)

  def transform(body: Callable[..., Any], info: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    if dict(info.flags).get("initializing"):
      return body(v, r, a, k)
    full_args = restore_static(info, a, k)[0]
    nondiff_values = tuple(full_args[i - 1] for i in nondiff)

    @jax.custom_vjp
    def f(diff_vars: Any, *args: Any) -> Any:
      return body((diff_vars, *v[1:]), r, args, k, mutable=False)[0]

    def f_fwd(diff_vars: Any, *args: Any) -> Any:
      return body((diff_vars, *v[1:]), r, args, k, mutable=False, fn=forward_fn)[0]

    def f_bwd(res: Any, g: Any) -> Any:
      variables_ct, *diff_ct = backward_fn(*nondiff_values, res, g)
      given = iter(diff_ct)
      # nondiff arguments are static (their dynamic form is all None): no cotangent
      args_ct = tuple(x if j + 1 in nondiff else next(given) for j, x in enumerate(a))
      return (info.tangents_in(variables_ct, tuple(v[0])), *args_ct)

    f.defvjp(f_fwd, f_bwd)
    return f(v[0], *a), tuple({} for _ in v)

  return Lift("custom_vjp", transform, variable_groups=(grad_vars,), static_argnums=nondiff,
              why="a custom_vjp function updates variables only during init")


def vjp(fn: Callable[..., Any], scope: Any, *primals: Any, has_aux: bool = False,
        reduce_axes: tuple[Any, ...] = (), vjp_variables: CollectionFilter = "params",
        variables: CollectionFilter = True, rngs: CollectionFilter = True) -> Any:
  """A lifted ``jax.vjp`` of ``fn(scope, *primals)``.

  Args:
    fn: the scope function.
    scope: a Scope (or a pytree of Scopes) whose variables are differentiated.
    *primals: the arguments after the scope.
    has_aux: ``fn`` returns ``(y, aux)``.
    reduce_axes: accepted for Flax compatibility (JAX removed it).
    vjp_variables: the collections that get a cotangent.
    variables: the collections lifted at all.
    rngs: the rng streams lifted.

  Returns:
    ``(y, bwd)`` (``(y, bwd, aux)`` with ``has_aux``); ``bwd(cotangent)`` returns
    ``(variable_grads, *primal_grads)``, ``variable_grads`` a ``{collection: tree}`` dict
    of the ``vjp_variables`` collections (a pytree of them for a pytree of scopes).
  """
  del reduce_axes
  return lift_scopes(vjp_lift(has_aux, vjp_variables, variables, rngs), fn, scope, primals, {})


def value_and_grad(fn: Callable[..., Any], scope: Any, *primals: Any, has_aux: bool = False,
                   reduce_axes: tuple[Any, ...] = (), variables: CollectionFilter = True,
                   rngs: CollectionFilter = True) -> Any:
  """A lifted ``jax.value_and_grad`` of a scalar ``fn(scope, *primals)`` w.r.t. the primals
  only (use :func:`vjp` for the variables).

  Returns:
    ``(y, grads)``, or ``(y, aux, grads)`` with ``has_aux``; ``grads`` has one gradient per
    primal.
  """
  out = vjp(fn, scope, *primals, has_aux=has_aux, reduce_axes=reduce_axes, vjp_variables=False,
            variables=variables, rngs=rngs)
  grads = tuple(out[1](jax.numpy.ones_like(out[0]))[1:])
  return (out[0], out[2], grads) if has_aux else (out[0], grads)


def jvp(fn: Callable[..., Any], scope: Any, primals: tuple[Any, ...], tangents: tuple[Any, ...],
        variable_tangents: Any, variables: CollectionFilter = True,
        rngs: CollectionFilter = True) -> tuple[Any, Any]:
  """A lifted ``jax.jvp`` of ``fn(scope, *primals)``.

  Args:
    fn: the scope function.
    scope: a Scope (or a pytree of Scopes).
    primals, tangents: as in ``jax.jvp``, for the arguments after the scope.
    variable_tangents: ``{collection: tree}`` tangents of the scope's variables (a pytree
      of them for a pytree of scopes); the collections named here are differentiated, the
      others held constant.
    variables: the collections lifted at all.
    rngs: the rng streams lifted.

  Returns:
    ``(y, y_tangent)``.
  """
  scopes_def: Any = jax.tree.structure(scope, is_leaf=lambda x: isinstance(x, Scope))
  per_scope = scopes_def.flatten_up_to(variable_tangents)
  # a collection without tangent leaves is held constant (its structure would not match)
  per_scope = [{c: t for c, t in d.items() if jax.tree.leaves(t)} for d in per_scope]
  cols = tuple(per_scope[0]) if per_scope else ()
  spec = jvp_lift(tuple(tangents), variable_tangents, cols, variables, rngs)
  return lift_scopes(spec, fn, scope, tuple(primals), {})


def custom_vjp(fn: Callable[..., Any], forward_fn: Callable[..., Any],
               backward_fn: Callable[..., Any], grad_vars: CollectionFilter = "params",
               nondiff_argnums: tuple[int, ...] = ()) -> Callable[..., Any]:
  """A lifted ``jax.custom_vjp``: ``fn(scope, *args)`` with a hand-written gradient.

  Args:
    fn: the scope function, ``fn(scope, *args) -> y``.
    forward_fn: ``forward_fn(scope, *args) -> (y, residuals)``.
    backward_fn: ``backward_fn(*nondiff_args, residuals, y_cotangent) ->
      (variable_grads, *arg_grads)``, ``variable_grads`` a ``{collection: tree}`` dict of
      the ``grad_vars`` collections (what :func:`vjp`'s backward function returns) and one
      gradient per differentiable argument.
    grad_vars: the collections differentiated.
    nondiff_argnums: arguments without gradients, the scope counted as 0 (as in
      ``jax.custom_vjp`` of ``fn``); they are static.

  Returns:
    ``wrapper(scope, *args)``. During init it calls ``fn`` directly (creating variables).
  """
  spec = custom_vjp_lift(forward_fn, backward_fn, grad_vars, tuple(nondiff_argnums))

  @functools.wraps(fn)
  def wrapper(scope: Any, *args: Any) -> Any:
    return lift_scopes(spec, fn, scope, args, {})

  return wrapper
