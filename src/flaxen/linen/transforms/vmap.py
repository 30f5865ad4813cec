"""``nn.vmap``: jax.vmap over a Module's method, with per-collection variable axes.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> Ensemble = nn.vmap(nn.Dense, variable_axes={"params": 0}, split_rngs={"params": True},
...                    in_axes=None, axis_size=4)
>>> variables = Ensemble(2).init(jax.random.key(0), jnp.ones(3))
>>> variables["params"]["kernel"].shape
(4, 3, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from flaxen import errors
from flaxen.core.filters import CollectionFilter
from flaxen.linen.transforms.lift import Lift, box_axes, lift_target

__all__ = ["vmap"]


def vmap(target: Any, variable_axes: Mapping[CollectionFilter, int | None] = {},  # noqa: B006
         split_rngs: Mapping[CollectionFilter, bool] = {},  # noqa: B006
         in_axes: Any = 0, out_axes: Any = 0, axis_size: int | None = None,
         axis_name: str | None = None, methods: Sequence[str] | None = None,
         spmd_axis_name: Any = None, metadata_params: Mapping[str, Any] = {}) -> Any:  # noqa: B006
  """A lifted ``jax.vmap``: map a Module (class) or a function ``fn(module, *args)``.

  Args:
    target: a Module class, or a function taking a bound Module first.
    variable_axes: ``{collection filter: axis}``; ``None`` (or leaving a collection out)
      broadcasts it: one copy shared by every slice.
    split_rngs: ``{rng stream filter: bool}``; split streams give each slice its own key.
    in_axes, out_axes, axis_size, axis_name, spmd_axis_name: as in ``jax.vmap`` (``in_axes``
      covers the arguments after the module; keyword arguments are broadcast).
    methods: the methods of a Module class to lift (default ``__call__``).
    metadata_params: passed to boxed variables' ``add_axis`` / ``remove_axis``.

  Returns:
    The lifted Module subclass (named ``Vmap{Class}``) or function.
  """
  filters = tuple(variable_axes)
  axes = (*variable_axes.values(), None)
  split = tuple(k for k, v in split_rngs.items() if v)
  params = dict(metadata_params)

  def transform(body: Callable[..., Any], static: Any, variables: Any, rngs: Any, args: Any,
                kwargs: Any) -> Any:
    size = axis_size
    if any(rngs[:-1]):
      size = size or _infer_size(in_axes, args)
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

  spec = Lift("vmap", transform, variable_groups=filters, rng_groups=split)
  return lift_target(target, spec, methods)


def _infer_size(in_axes: Any, args: tuple[Any, ...]) -> int:
  """The mapped axis size: the first argument leaf that ``in_axes`` maps."""
  per_arg = in_axes if isinstance(in_axes, list | tuple) else (in_axes,) * len(args)
  sizes: list[int] = []

  def collect(axis: int | None, sub: Any) -> None:
    if axis is not None:
      sizes.extend(leaf.shape[axis] for leaf in jax.tree.leaves(sub))

  for ax, arg in zip(per_arg, args, strict=False):
    jax.tree.map(collect, ax, arg, is_leaf=lambda x: x is None)
    if sizes:
      return sizes[0]
  raise errors.TransformAxisSizeError("vmap", "split_rngs needs one key per slice but no "
                                      "argument is mapped")
