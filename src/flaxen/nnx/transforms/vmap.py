"""``nnx.vmap``: ``jax.vmap`` for functions that take, mutate and return graph objects.

The graph objects among the arguments are taken apart (``lift.GraphArgs``) and their state
values are mapped over the axes ``in_axes`` gives them (per filter with ``StateAxes``);
changed state comes back along the same axes and is written into the caller's Variables.
Graph objects returned by the function are rebuilt with their state along ``out_axes``
(e.g. a stack of layers created under ``vmap``).

Which output value goes out along which axis is only known once the function has been
traced, while ``jax.vmap`` wants ``out_axes`` first: the traced function therefore returns
its outputs grouped by axis (one list per axis value that appears in the specs), and the
static ``_Order`` it also returns says how to put them back in order.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> @nnx.split_rngs(splits=3)
... @nnx.vmap(in_axes=0, out_axes=0)
... def create(rngs):
...   return nnx.Linear(2, 4, rngs=rngs)
>>> ensemble = create(nnx.Rngs(0))
>>> ensemble.kernel.value.shape
(3, 2, 4)
>>> nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(ensemble, jnp.ones((5, 2))).shape
(3, 5, 4)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax

from flaxen.errors.nnx import BroadcastStateUpdateError, TransformAxesError
from flaxen.nnx.graph import flatten
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.transforms import lift
from flaxen.nnx.transforms.axes import (
  Carry,
  add_axis,
  axis_values,
  check_aliasing,
  check_prefixes,
  check_sizes,
  leaf_axes,
  plain_axes,
  positional,
  remove_axis,
  state_axes,
)
from flaxen.nnx.transforms.tree_mode import check_not_bound_method, check_unique

__all__ = ["vmap"]


class _Order:
  """Static: where each output value went (``(group, index)``), and the output's shape."""

  __slots__ = ("update", "treedef", "node_positions", "places", "num_leaves")

  def __init__(self, update: lift.GraphUpdate, treedef: Any, node_positions: tuple,
               places: list, num_leaves: int):
    self.update = update
    self.treedef = treedef
    self.node_positions = node_positions
    self.places = places
    self.num_leaves = num_leaves


jax.tree_util.register_static(_Order)


def _check(axes: list) -> None:
  if any(a is Carry for a in axes):
    raise TransformAxesError("vmap", "nnx.Carry is not an axis of vmap",
                             "use nnx.Carry with nnx.scan; give vmap ints or None")


class _Vmapped:
  name = "vmap"
  jax_transform = staticmethod(jax.vmap)
  kwargs_axis: Any = 0  # the axis of keyword-only arguments
  static_axis: Any = None  # the out axis of the static _Order

  def __init__(self, f: Callable, in_axes: Any, out_axes: Any, metadata: Mapping[str, Any],
               jax_options: dict, graph: bool | None = None, graph_updates: bool | None = None):
    check_not_bound_method(f, f"nnx.{self.name}")
    functools.update_wrapper(self, f)
    self.f, self.in_axes, self.out_axes, self.metadata = f, in_axes, out_axes, metadata
    self.graph = resolve_graph(graph)
    self.graph_updates = resolve_graph_updates(graph_updates)
    check_prefixes(self.name, self.graph, self.graph_updates, in_axes=in_axes,
                   out_axes=out_axes)
    self.groups = axis_values(in_axes, out_axes) or [None]
    self.jax_options = jax_options

  def __get__(self, obj: Any, objtype: Any = None) -> Callable:
    return self if obj is None else functools.partial(self, obj)

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    args, kwargs = positional(self.f, args, kwargs)  # keyword-only ones: axis 0, as in jax
    if not self.graph:
      check_unique((args, kwargs), f"nnx.{self.name}")
    g = lift.GraphArgs((args, kwargs))
    axes = leaf_axes(self.name, "in_axes", (self.in_axes, self.kwargs_axis), (args, kwargs))
    node_axes = [axes[p] for p in g.positions]
    check_aliasing(f"nnx.{self.name}", g.nodes, node_axes)
    value_axes = state_axes("vmap", node_axes, g.paths, g.variables)
    arg_axes = plain_axes("vmap", g.leaves, axes)
    _check(value_axes + arg_axes)
    check_sizes("vmap", g, arg_axes, value_axes)
    changed: list = []  # paths of broadcast Variables the function wrote
    pure = functools.partial(self._pure, g, node_axes, value_axes, changed)
    try:
      out_groups, order = self.jax_transform(
        pure, in_axes=(arg_axes, value_axes), out_axes=(self.groups, self.static_axis),
        **self.jax_options)(g.leaves, g.values)
    except ValueError as e:
      if "axis spec None but output was batched" not in str(e):
        raise
      if changed:
        raise BroadcastStateUpdateError(self.name, *changed[0]) from None
      raise TransformAxesError(
        "vmap", "an output with axis None was given a different value per mapped element",
        "give it an int axis (in out_axes, or in a StateAxes for the Variable), or write "
        "only values that do not depend on the mapped inputs") from None
    flat = [out_groups[i][k] for i, k in order.places]
    out_leaves, values = flat[:order.num_leaves], flat[order.num_leaves:]
    out_nodes = g.write_back(order.update, values)
    for p, node in zip(order.node_positions, out_nodes, strict=True):
      out_leaves[p] = node
    return order.treedef.unflatten(out_leaves)

  def _pure(self, g: lift.GraphArgs, node_axes: list, value_axes: list, changed: list,
            leaves: list, values: list) -> tuple:
    (args, kwargs), inner, refs = g.rebuild(leaves, values)
    inner_vars = flatten(tuple(inner))[1] if self.metadata else []
    remove_axis(inner_vars, value_axes, self.metadata)
    out = self.f(*args, **kwargs)
    add_axis(inner_vars, value_axes, self.metadata)
    out_leaves, treedef, node_positions, out_nodes = lift.take_nodes(out)
    out_axes = leaf_axes("vmap", "out_axes", self.out_axes, out)
    if self.metadata:  # Variables created inside (in outputs or inputs) get the axis' name
      _, all_vars, paths, _ = flatten((*inner, *out_nodes))
      known = {id(v) for v in inner_vars}
      fresh = [k for k, v in enumerate(all_vars) if id(v) not in known]
      if fresh:
        owner_axes = node_axes + [out_axes[p] for p in node_positions]
        new_axes = state_axes("vmap", owner_axes, paths, all_vars)
        add_axis([all_vars[k] for k in fresh], [new_axes[k] for k in fresh], self.metadata)
    new_values, update = lift.capture(inner, refs, g.graphdef, out_nodes)
    changed.extend((g.paths[j][1:], g.variables[j]) for j, axis in enumerate(value_axes)
                   if axis is None and update.same and new_values[j] is not values[j])
    if not update.same:  # new structure: each value's axis from its object's spec
      _, variables, paths, _ = flatten((*inner, *out_nodes))
      owner_axes = node_axes + [out_axes[p] for p in node_positions]
      value_axes = state_axes("vmap", owner_axes, paths, variables)
    leaf_out_axes = plain_axes("vmap", out_leaves, out_axes)
    _check(leaf_out_axes + value_axes)
    groups: list[list] = [[] for _ in self.groups]
    places = []
    for value, axis in zip([*out_leaves, *new_values], leaf_out_axes + value_axes, strict=True):
      i = 0 if value is None else self.groups.index(axis)  # None holds no array: any group
      places.append((i, len(groups[i])))
      groups[i].append(value)
    return groups, _Order(update, treedef, node_positions, places, len(out_leaves))


def vmap(f: Callable | None = None, *, in_axes: Any = 0, out_axes: Any = 0,
         axis_name: Any = None, axis_size: int | None = None, spmd_axis_name: Any = None,
         transform_metadata: Mapping[str, Any] = {},  # noqa: B006 (read only)
         graph: bool | None = None, graph_updates: bool | None = None) -> Any:
  """Vectorizes ``f`` like ``jax.vmap``; graph objects among its arguments are updated.

  Args:
    f: the function; omitted, ``vmap`` returns a decorator.
    in_axes: a prefix of the arguments tuple: an int axis, ``None`` (broadcast) or, for a
      graph object, a ``StateAxes`` giving an axis per filter. Keyword arguments are mapped
      over axis 0, as in ``jax.vmap``.
    out_axes: a prefix of the output, with the same meaning; graph objects returned by
      ``f`` get their state stacked along it.
    axis_name, axis_size, spmd_axis_name: as in ``jax.vmap``.
    transform_metadata: with ``{nnx.PARTITION_NAME: name}``, the mapped axis is named
      ``name`` in the Variables' sharding metadata (``sharding_names`` or ``sharding``):
      removed inside ``f``, inserted at the axis outside.
    graph: graph mode (shared references kept) or, if False, tree mode (Modules as
      pytrees: a Variable may appear only once). ``None``: ``nnx.set_graph_mode``'s value.
    graph_updates: in graph mode, whether ``StateAxes`` prefixes are allowed. ``None``:
      ``nnx.set_graph_updates``'s value. Without graph updates, a prefix shaped like the
      argument (``nnx.prefix``) gives per-Variable axes instead.

  Returns:
    The vectorized function. Changes to the state of argument objects come back along the
    argument's axes (a broadcast Variable may only be given an unbatched value).
  """
  if f is None:
    return functools.partial(vmap, in_axes=in_axes, out_axes=out_axes, axis_name=axis_name,
                             axis_size=axis_size, spmd_axis_name=spmd_axis_name,
                             transform_metadata=transform_metadata, graph=graph,
                             graph_updates=graph_updates)
  options = dict(axis_name=axis_name, axis_size=axis_size, spmd_axis_name=spmd_axis_name)
  return _Vmapped(f, in_axes, out_axes, transform_metadata, options, graph, graph_updates)
