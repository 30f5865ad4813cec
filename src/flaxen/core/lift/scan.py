"""``scan``: jax.lax.scan of a scope function ``fn(scope, carry, *xs) -> (carry, ys)``.

Variable collections are scanned (``variable_axes``: one slice per step, stacked), carried
(``variable_carry``: threaded through the steps) or broadcast (``variable_broadcast`` and
every collection in no group: one copy read by all steps, immutable in the loop). During
init the function runs once before the loop on the first slice so that broadcast
variables exist; the loop then reads them.

>>> import jax, jax.numpy as jnp
>>> from flaxen import core
>>> def cell(scope, c, x):
...   w = scope.param("w", jax.nn.initializers.normal(), (2, 2))
...   c = jnp.tanh(c @ w + x)
...   return c, c
>>> scanned = core.scan(cell, variable_broadcast="params", split_rngs={"params": False})
>>> (c, ys), variables = core.init(scanned)(jax.random.key(0), jnp.zeros(2), jnp.ones((5, 2)))
>>> ys.shape, variables["params"]["w"].shape  # five steps, one shared kernel
((5, 2), (2, 2))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flaxen import errors
from flaxen.core.broadcast import broadcast
from flaxen.core.filters import CollectionFilter, in_filter, union_filters
from flaxen.core.lift.engine import Lift, box_axes
from flaxen.core.lift.scopes import lift_scopes

__all__ = ["scan", "scan_lift"]


def scan_lift(variable_axes: Mapping[CollectionFilter, int], variable_broadcast: CollectionFilter,
              variable_carry: CollectionFilter, split_rngs: Mapping[CollectionFilter, bool],
              in_axes: Any, out_axes: Any, length: int | None, reverse: bool, unroll: int,
              data_transform: Callable[..., Any] | None,
              metadata_params: Mapping[str, Any], check_constancy_invariants: bool = True) -> Lift:
  """The :class:`Lift` of a scan (shared by ``nn.scan``); arguments as in :func:`scan`."""
  filters = tuple(variable_axes)
  axes = tuple(variable_axes.values())
  k = len(filters)
  split = tuple(s for s, v in split_rngs.items() if v)
  params = dict(metadata_params)
  loop_mutable: CollectionFilter = variable_carry
  for f in filters:
    loop_mutable = union_filters(loop_mutable, f)

  def transform(body: Callable[..., Any], static: Any, variables: Any, rngs: Any, args: Any,
                kwargs: Any) -> Any:
    carry, xs = args[0], args[1:]
    per_x = tuple(in_axes) if isinstance(in_axes, list | tuple) else (in_axes,) * len(xs)
    scanned_xs = tuple(None if a is broadcast else _move(x, a, 0)
                       for x, a in zip(xs, per_x, strict=True))
    scanned_vars = tuple(_move(g, a, 0) for g, a in zip(variables[:k], axes, strict=True))
    n = length or _first_dim((scanned_xs, scanned_vars))
    keys = tuple(jax.tree.map(lambda key: jax.random.split(key, n), g) for g in rngs[:-1])
    shared, vcarry, rest = variables[k], variables[k + 1], variables[k + 2]

    def step_args(t_xs: Any) -> tuple[Any, ...]:
      return tuple(x if a is broadcast else t for x, t, a in zip(xs, t_xs, per_x, strict=True))

    out_shared: Any = {}
    out_rest: Any = {}
    if check_constancy_invariants and dict(static.flags).get("initializing"):
      # Create the broadcast (and carried) variables once, outside the loop (the extra
      # trace that check_constancy_invariants=False saves, as in Flax).
      first = jax.tree.map(lambda a: a[0], (scanned_vars, keys, scanned_xs))
      _, mutated = body((*first[0], shared, vcarry, rest), (*first[1], rngs[-1]),
                        (carry, *step_args(first[2])), kwargs, mutable=static.outer_mutable)
      out_shared, out_rest = mutated[k], mutated[k + 2]
      shared, rest = {**shared, **out_shared}, {**rest, **out_rest}
      vcarry = {**mutated[k + 1], **vcarry}

    def step(c: Any, t: Any) -> Any:
      v_carry, carry = c
      v_scan, t_keys, t_xs = t
      v_in = (*box_axes(v_scan, axes, params, add=False), shared, v_carry, rest)
      r_in = (*t_keys, rngs[-1])
      if data_transform is not None:
        v_in, r_in = data_transform(v_in, r_in)
      (carry, ys), mutated = body(v_in, r_in, (carry, *step_args(t_xs)), kwargs)
      v_carry = {col: mutated[k + 1].get(col, v) for col, v in v_carry.items()}
      return (v_carry, carry), (box_axes(mutated[:k], axes, params, add=True), ys)

    (vcarry, carry), (out_scan, ys) = jax.lax.scan(
      step, (vcarry, carry), (scanned_vars, keys, scanned_xs), length=n, reverse=reverse,
      unroll=unroll)
    out_scan = tuple(_move(g, 0, a) for g, a in zip(out_scan, axes, strict=True))
    ys = ys if out_axes is broadcast else _move(ys, 0, out_axes)
    vcarry = {c: v for c, v in vcarry.items() if in_filter(static.outer_mutable, c)}
    return (carry, ys), (*out_scan, out_shared, vcarry, out_rest)

  return Lift("scan", transform, variable_groups=(*filters, variable_broadcast, variable_carry),
              rng_groups=split, mutable=loop_mutable,
              why="only variable_axes and variable_carry collections change in the loop")


def _move(tree: Any, src: Any, dst: int) -> Any:
  if src == dst or src is None:
    return tree
  return jax.tree.map(lambda x: jnp.moveaxis(x, src, dst), tree)


def _first_dim(tree: Any) -> int:
  leaves = jax.tree.leaves(tree)
  if not leaves:
    raise errors.TransformAxisSizeError("scan", "there are no scanned inputs or variables")
  return leaves[0].shape[0]


def scan(fn: Callable[..., Any],
         variable_axes: Mapping[CollectionFilter, int] = {},  # noqa: B006
         variable_broadcast: CollectionFilter = False, variable_carry: CollectionFilter = False,
         split_rngs: Mapping[CollectionFilter, bool] = {},  # noqa: B006
         in_axes: Any = 0, out_axes: Any = 0, length: int | None = None, reverse: bool = False,
         unroll: int = 1, data_transform: Callable[..., Any] | None = None,
         metadata_params: Mapping[str, Any] = {},  # noqa: B006
         check_constancy_invariants: bool = True) -> Callable[..., Any]:
  """A lifted ``jax.lax.scan`` of ``fn(scope, carry, *xs) -> (carry, ys)``.

  Args:
    fn: the scope function.
    variable_axes: ``{collection filter: axis}`` of the scanned collections.
    variable_broadcast: collections shared by every step (immutable in the loop).
    variable_carry: collections threaded through the steps (mutable in the loop).
    split_rngs: ``{rng stream filter: bool}``; split streams give each step its own key.
    in_axes: the scan axis of each ``xs`` argument, or :data:`flaxen.core.broadcast` to pass
      it whole to every step.
    out_axes: the axis of the stacked ``ys``.
    length, reverse, unroll: as in ``jax.lax.scan``.
    data_transform: ``(variable_groups, rng_groups) -> (variable_groups, rng_groups)``
      applied to each step's variables and keys before the step runs (for sharding
      constraints on the per-step slices).
    metadata_params: passed to boxed variables' ``add_axis`` / ``remove_axis``.
    check_constancy_invariants: broadcast collections are immutable inside the loop, so
      they are loop invariants by construction; but only with True (the default) does init
      trace the function once more before the loop, so that broadcast variables can be
      created. False saves that trace (as in Flax): the broadcast variables must exist.

  Returns:
    ``wrapper(scope, carry, *xs) -> (carry, ys)``.
  """
  spec = scan_lift(variable_axes, variable_broadcast, variable_carry, split_rngs, in_axes,
                   out_axes, length, reverse, unroll, data_transform, metadata_params,
                   check_constancy_invariants)

  def wrapper(scope: Any, carry: Any, *xs: Any, **kwargs: Any) -> Any:
    return lift_scopes(spec, fn, scope, (carry, *xs), kwargs)

  return wrapper
