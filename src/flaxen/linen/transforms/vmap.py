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

from collections.abc import Mapping, Sequence
from typing import Any

from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.vmap import vmap_lift
from flaxen.linen.transforms.lift import lift_target

__all__ = ["vmap"]


def vmap(target: Any, variable_axes: Mapping[CollectionFilter, int | None] = {},  # noqa: B006
         split_rngs: Mapping[CollectionFilter, bool] = {},  # noqa: B006
         in_axes: Any = 0, out_axes: Any = 0, axis_size: int | None = None,
         axis_name: str | None = None, methods: Sequence[str] | Mapping[str, Any] | None = None,
         spmd_axis_name: Any = None, metadata_params: Mapping[str, Any] = {}) -> Any:  # noqa: B006
  """A lifted ``jax.vmap``: map a Module (class) or a function ``fn(module, *args)``.

  Args:
    target: a Module class, or a function taking a bound Module first.
    variable_axes: ``{collection filter: axis}``; ``None`` (or leaving a collection out)
      broadcasts it: one copy shared by every slice.
    split_rngs: ``{rng stream filter: bool}``; split streams give each slice its own key.
    in_axes, out_axes, axis_size, axis_name, spmd_axis_name: as in ``jax.vmap`` (``in_axes``
      covers the arguments after the module; keyword arguments are broadcast).
    methods: the methods of a Module class to lift (default ``__call__``), or a dict
      ``{method: {argument: value}}`` giving a method its own vmap arguments.
    metadata_params: passed to boxed variables' ``add_axis`` / ``remove_axis``.

  Returns:
    The lifted Module subclass (named ``Vmap{Class}``) or function.
  """
  base = dict(variable_axes=variable_axes, split_rngs=split_rngs, in_axes=in_axes,
              out_axes=out_axes, axis_size=axis_size, axis_name=axis_name,
              spmd_axis_name=spmd_axis_name, metadata_params=metadata_params)

  def make(**overrides: Any) -> Any:
    return vmap_lift(**{**base, **overrides})

  return lift_target(target, make, methods)
