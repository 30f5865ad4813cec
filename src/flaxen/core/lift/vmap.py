"""``vmap``: jax.vmap of a scope function, with per-collection variable axes.

>>> import jax, jax.numpy as jnp
>>> from flaxen import core
>>> def dense(scope, x):
...   w = scope.param("w", jax.nn.initializers.normal(), (x.shape[-1], 2))
...   return x @ w
>>> ensemble = core.vmap(dense, variable_axes={"params": 0}, split_rngs={"params": True},
...                      in_axes=None, axis_size=4)
>>> y, variables = core.init(ensemble)(jax.random.key(0), jnp.ones(3))
>>> y.shape, variables["params"]["w"].shape
((4, 2), (4, 3, 2))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax

from flaxen import errors
from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.engine import Lift, box_axes
from flaxen.core.lift.scopes import lift_scopes

__all__ = ["vmap", "vmap_lift"]


def vmap_lift(variable_axes: Mapping[CollectionFilter, int | None],
              split_rngs: Mapping[CollectionFilter, bool], in_axes: Any, out_axes: Any,
              axis_size: int | None, axis_name: str | None, spmd_axis_name: Any,
              metadata_params: Mapping[str, Any]) -> Lift:
  """The :class:`Lift` of a vmap (shared by ``nn.vmap``); arguments as in :func:`vmap`."""
  filters = tuple(variable_axes)
  axes = (*variable_axes.values(), None)
  split = tuple(k for k, v in split_rngs.items() if v)
  params = dict(metadata_params)

  def transform(body: Callable[..., Any], static: Any, variables: Any, rngs: Any, args: Any,
                kwargs: Any) -> Any:
    size = axis_size
    if any(rngs[:-1]):
      size = size or _infer_size(in_axes, args, variables, axes)
      rngs = (*(jax.tree.map(lambda k: jax.random.split(k, size), g) for g in rngs[:-1]),
              rngs[-1])
    rng_axes = (*(0 for _ in split), None)

    # Boxes drop the mapped axis from their metadata before the map and add it back after
    # it (as in Flax), so a box may also reshape its value there (see AxisMetadata).
    arg_axes = tuple(in_axes) if isinstance(in_axes, list | tuple) else in_axes
    y, mutated = jax.vmap(body, in_axes=(axes, rng_axes, arg_axes, None),
                          out_axes=(out_axes, axes), axis_size=size, axis_name=axis_name,
                          spmd_axis_name=spmd_axis_name)(
      box_axes(variables, axes, params, add=False), rngs, args, kwargs)
    return y, box_axes(mutated, axes, params, add=True)

  return Lift("vmap", transform, variable_groups=filters, rng_groups=split)


def _infer_size(in_axes: Any, args: tuple[Any, ...], variables: Any, axes: Any) -> int:
  """The mapped axis size: the first argument leaf that ``in_axes`` maps, else the first
  variable of a mapped collection (apply of a vmap with ``in_axes=None``)."""
  per_arg = in_axes if isinstance(in_axes, list | tuple) else (in_axes,) * len(args)
  sizes: list[int] = []

  def collect(axis: int | None, sub: Any) -> None:
    if axis is not None:
      sizes.extend(leaf.shape[axis] for leaf in jax.tree.leaves(sub))

  for ax, arg in zip(per_arg, args, strict=False):
    jax.tree.map(collect, ax, arg, is_leaf=lambda x: x is None)
    if sizes:
      return sizes[0]
  for group, axis in zip(variables, axes, strict=True):
    leaves = jax.tree.leaves(group) if axis is not None else []
    if leaves:
      return leaves[0].shape[axis]
  raise errors.TransformAxisSizeError("vmap", "split_rngs needs one key per slice but no "
                                      "argument or variable is mapped: pass axis_size")


def vmap(fn: Callable[..., Any], variable_axes: Mapping[CollectionFilter, int | None],
         split_rngs: Mapping[CollectionFilter, bool], in_axes: Any = 0, out_axes: Any = 0,
         axis_size: int | None = None, axis_name: str | None = None,
         spmd_axis_name: Any = None,
         metadata_params: Mapping[str, Any] = {}) -> Callable[..., Any]:  # noqa: B006
  """A lifted ``jax.vmap`` of a scope function ``fn(scope, *args)``.

  Args:
    fn: the scope function.
    variable_axes: ``{collection filter: axis}``; ``None`` (or leaving a collection out)
      broadcasts it: one copy shared by every slice.
    split_rngs: ``{rng stream filter: bool}``; split streams give each slice its own key.
    in_axes, out_axes, axis_size, axis_name, spmd_axis_name: as in ``jax.vmap``
      (``in_axes`` covers the arguments after the scope; keyword arguments are broadcast).
    metadata_params: passed to boxed variables' ``add_axis`` / ``remove_axis``.

  Returns:
    ``wrapper(scope, *args)``; ``scope`` may be a Scope or a pytree of Scopes.
  """
  spec = vmap_lift(variable_axes, split_rngs, in_axes, out_axes, axis_size, axis_name,
                   spmd_axis_name, metadata_params)

  def wrapper(scope: Any, *args: Any, **kwargs: Any) -> Any:
    return lift_scopes(spec, fn, scope, args, kwargs)

  return wrapper
