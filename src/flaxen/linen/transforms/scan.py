"""``nn.scan``: jax.lax.scan over a Module's method, and ``nn.remat_scan``.

The scanned function has the signature ``fn(module, carry, *xs) -> (carry, ys)``. Variable
collections are scanned (``variable_axes``: one slice per step, stacked), carried
(``variable_carry``: threaded through the steps) or broadcast (``variable_broadcast`` and
every collection in no group: one copy read by all steps, immutable in the loop). During
``init`` the function runs once before the loop on the first slice so that broadcast
variables exist; the loop then reads them.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> class Cell(nn.Module):
...   @nn.compact
...   def __call__(self, c, x):
...     c = nn.Dense(2)(c) + x
...     return c, c
>>> Scanned = nn.scan(Cell, variable_broadcast="params", split_rngs={"params": False})
>>> xs = jnp.ones((5, 2))  # five steps
>>> variables = Scanned().init(jax.random.key(0), jnp.zeros(2), xs)
>>> variables["params"]["Dense_0"]["kernel"].shape  # one kernel shared by all steps
(2, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flaxen.core.broadcast import broadcast
from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.checkpoint import nest_remat_scan
from flaxen.core.lift.scan import scan_lift
from flaxen.linen.module import Module
from flaxen.linen.transforms.checkpoint import checkpoint
from flaxen.linen.transforms.lift import lift_target

__all__ = ["scan", "remat_scan", "broadcast"]


def scan(target: Any, variable_axes: Mapping[CollectionFilter, int] = {},  # noqa: B006
         variable_broadcast: CollectionFilter = False,
         variable_carry: CollectionFilter = False,
         split_rngs: Mapping[CollectionFilter, bool] = {},  # noqa: B006
         in_axes: Any = 0, out_axes: Any = 0, length: int | None = None,
         reverse: bool = False, unroll: int = 1,
         data_transform: Callable[..., Any] | None = None,
         metadata_params: Mapping[str, Any] = {},  # noqa: B006
         methods: Sequence[str] | Mapping[str, Any] | None = None,
         check_constancy_invariants: bool = True) -> Any:
  """A lifted ``jax.lax.scan`` of ``fn(module, carry, *xs) -> (carry, ys)``.

  Args:
    target: a Module class, or a function taking a bound Module first.
    variable_axes: ``{collection filter: axis}`` of the scanned collections.
    variable_broadcast: collections shared by every step (immutable in the loop).
    variable_carry: collections threaded through the steps (mutable in the loop).
    split_rngs: ``{rng stream filter: bool}``; split streams give each step its own key.
    in_axes: the scan axis of each ``xs`` argument, or :data:`broadcast` to pass it whole.
    out_axes: the axis of the stacked ``ys``.
    length, reverse, unroll: as in ``jax.lax.scan``.
    data_transform: ``(variable_groups, rng_groups) -> (variable_groups, rng_groups)``,
      applied to each step's variables (a tuple of ``{collection: (subtree per scope,)}``
      dicts: one per ``variable_axes`` entry, then broadcast, carry and the rest) and rng
      keys (one dict per split filter, then the rest) before the step runs; for sharding
      constraints on the per-step slices (``partitioning.scan_with_axes``).
    metadata_params: passed to boxed variables' ``add_axis`` / ``remove_axis``.
    methods: the methods of a Module class to lift (default ``__call__``), or a dict
      ``{method: {argument: value}}`` giving a method its own scan arguments.
    check_constancy_invariants: broadcast collections are immutable inside the loop, so
      they are loop invariants by construction; but only with True (the default) does
      ``init`` trace the method once more before the loop, so that broadcast variables can
      be created. False saves that trace (as in Flax): the broadcast variables must exist.

  Returns:
    The lifted Module subclass (named ``Scan{Class}``) or function, returning
    ``(carry, ys)``.
  """
  base = dict(variable_axes=variable_axes, variable_broadcast=variable_broadcast,
              variable_carry=variable_carry, split_rngs=split_rngs, in_axes=in_axes,
              out_axes=out_axes, length=length, reverse=reverse, unroll=unroll,
              data_transform=data_transform, metadata_params=metadata_params,
              check_constancy_invariants=check_constancy_invariants)

  def make(**overrides: Any) -> Any:
    return scan_lift(**{**base, **overrides})

  return lift_target(target, make, methods)


def remat_scan(target: Any, lengths: Sequence[int] = (), policy: Callable[..., Any] | None = None,
               variable_broadcast: CollectionFilter = False,
               variable_carry: CollectionFilter = False,
               variable_axes: Mapping[CollectionFilter, int] = {True: 0},  # noqa: B006
               split_rngs: Mapping[CollectionFilter, bool] = {True: True}) -> Any:  # noqa: B006
  """Nested scans of a rematerialized ``fn(module, x) -> x``: ``prod(lengths)`` steps.

  Each level is ``nn.scan(nn.remat(...))``, so the gradient keeps O(sum(lengths)) activations
  instead of O(prod(lengths)); the variables get one leading axis per level.

  >>> import jax, jax.numpy as jnp
  >>> import flaxen.linen as nn
  >>> Stack = nn.remat_scan(nn.Dense, lengths=(2, 3))
  >>> variables = Stack(4).init(jax.random.key(0), jnp.ones(4))
  >>> variables["params"]["kernel"].shape
  (2, 3, 4, 4)
  """
  is_class = isinstance(target, type) and issubclass(target, Module)
  fn = target.__call__ if is_class else target

  run = nest_remat_scan(fn, lengths, scan, checkpoint, policy, variable_axes=variable_axes,
                        variable_broadcast=variable_broadcast, variable_carry=variable_carry,
                        split_rngs=split_rngs)

  if not is_class:
    return run
  run._flaxen_wrapped = True  # type: ignore[attr-defined]
  return type(f"RematScan{target.__name__}", (target,), {"__call__": run})
