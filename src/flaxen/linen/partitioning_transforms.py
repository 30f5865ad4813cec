"""Lifted scan / vmap / remat for the ``params_axes`` style of partitioning.

:func:`scan_with_axes` and :func:`vmap_with_axes` run ``nn.scan`` / ``nn.vmap`` and also
insert the new stacked axis into the :class:`AxisMetadata` that ``param_with_axes`` /
``variable_with_axes`` record in the ``<collection>_axes`` collections, so
``get_axis_names`` describes the stacked arrays. Inside, the metadata looks as the wrapped
module made it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from flaxen import errors
from flaxen.core.filters import CollectionFilter, union_filters
from flaxen.linen.transforms import checkpoint, map_variables, scan, vmap

__all__ = ["scan_with_axes", "vmap_with_axes", "remat", "core_remat_static"]


def _is_meta(x: Any) -> bool:
  from flaxen.linen.partitioning import AxisMetadata  # defined there, which imports this

  return isinstance(x, AxisMetadata)


def _with_axis_name(target: Any, axis_pos: int, axis_name: str, axis_col: str) -> Any:
  """``target`` with ``axis_name`` at ``axis_pos`` in the names of ``axis_col``'s metadata."""

  def edit(tree: Any, insert: bool) -> Any:
    def leaf(meta: Any) -> Any:
      if not _is_meta(meta) or meta.names is None:
        return meta
      if not isinstance(meta.names, tuple | list):
        raise errors.PartitioningUnspecifiedError(meta)
      names = list(meta.names)
      if insert:
        names.insert(axis_pos, axis_name)
      else:
        names.pop(axis_pos)
      return meta.replace(names=tuple(names))

    return jax.tree.map(leaf, tree, is_leaf=_is_meta)

  return map_variables(target, axis_col, mutable=True,
                       trans_in_fn=lambda vs: edit(vs, insert=False),
                       trans_out_fn=lambda vs: edit(vs, insert=True))


def scan_with_axes(target: Any,
                   variable_axes: Mapping[CollectionFilter, int] = {},  # noqa: B006
                   variable_broadcast: CollectionFilter = False,
                   variable_carry: CollectionFilter = False,
                   split_rngs: Mapping[CollectionFilter, bool] = {},  # noqa: B006
                   in_axes: Any = 0, out_axes: Any = 0, length: int | None = None,
                   reverse: bool = False, unroll: int = 1, axis_name: str = "layers",
                   axes_collections: tuple[str, ...] = ("params",),
                   data_transform: Callable[..., Any] | None = None,
                   methods: Sequence[str] | None = None) -> Any:
  """``nn.scan`` that also names the scan axis ``axis_name`` in the logical axis metadata
  of ``axes_collections`` (the ``<collection>_axes`` collections are broadcast).

  Returns:
    The lifted Module subclass or function, as ``nn.scan`` returns it.
  """
  axes_cols = tuple(f"{col}_axes" for col in axes_collections)
  scanned = scan(target, variable_axes=variable_axes,
                 variable_broadcast=union_filters(variable_broadcast, axes_cols),
                 variable_carry=variable_carry, split_rngs=split_rngs, in_axes=in_axes,
                 out_axes=out_axes, length=length, reverse=reverse, unroll=unroll,
                 data_transform=data_transform, methods=methods)
  for col in axes_collections:
    if col in variable_axes:
      scanned = _with_axis_name(scanned, variable_axes[col], axis_name, f"{col}_axes")
  return scanned


def vmap_with_axes(target: Any, variable_axes: Mapping[CollectionFilter, int],
                   split_rngs: Mapping[CollectionFilter, bool] = {},  # noqa: B006
                   in_axes: Any = 0, out_axes: Any = 0, axis_size: int | None = None,
                   axis_name: str | None = None,
                   partitioning_axis_names: Mapping[str, str] = {},  # noqa: B006
                   spmd_axis_name: Any = None,
                   methods: Sequence[str] | None = None) -> Any:
  """``nn.vmap`` that also names the mapped axis of each collection ``c`` in
  ``partitioning_axis_names`` (``{c: name}``) in the metadata of ``c + "_axes"``.

  Returns:
    The lifted Module subclass or function, as ``nn.vmap`` returns it.
  """
  vmapped = vmap(target, variable_axes=variable_axes, split_rngs=split_rngs, in_axes=in_axes,
                 out_axes=out_axes, axis_size=axis_size, axis_name=axis_name,
                 spmd_axis_name=spmd_axis_name, methods=methods)
  for col, axis in variable_axes.items():
    if col in partitioning_axis_names:
      vmapped = _with_axis_name(vmapped, axis, partitioning_axis_names[col], f"{col}_axes")
  return vmapped


def remat(target: Any, variables: CollectionFilter = True, rngs: CollectionFilter = True,
          concrete: bool = False, prevent_cse: bool = True,
          static_argnums: int | tuple[int, ...] = (), policy: Callable[..., bool] | None = None,
          methods: Sequence[str] | None = None) -> Any:
  """``nn.remat`` (a lifted ``jax.checkpoint``); static arguments count the module as 0."""
  return checkpoint(target, variables=variables, rngs=rngs, concrete=concrete,
                    prevent_cse=prevent_cse, static_argnums=static_argnums, policy=policy,
                    methods=methods)


def core_remat_static(fn: Callable[..., Any], variables: CollectionFilter = True,
                      rngs: CollectionFilter = True, concrete: bool = False,
                      prevent_cse: bool = True, static_argnums: int | tuple[int, ...] = (),
                      policy: Callable[..., bool] | None = None) -> Any:
  """:func:`remat` of a function ``fn(module, *args)``."""
  return remat(fn, variables=variables, rngs=rngs, concrete=concrete, prevent_cse=prevent_cse,
               static_argnums=static_argnums, policy=policy)
