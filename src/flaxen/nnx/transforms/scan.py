"""``nnx.scan``: ``jax.lax.scan`` for functions that take and mutate graph objects.

Every leaf of the arguments, and every Variable of the graph objects among them, is either
carried (``nnx.Carry``), scanned over an axis (an int: sliced per iteration, and, for
Variables, stacked back along it afterwards) or broadcast (``None``: the same value in every
iteration, which the body must not replace). ``in_axes`` gives them per argument, or per
filter with ``StateAxes``. The output's ``out_axes`` says which part of what the body
returns is the new carry (``nnx.Carry``) and which parts are stacked (ints).

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> @nnx.split_rngs(splits=3)
... @nnx.vmap(in_axes=0, out_axes=0)
... def create(rngs):
...   return nnx.Linear(2, 2, rngs=rngs)
>>> layers = create(nnx.Rngs(0))
>>> @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
... def forward(x, layer):
...   return layer(x)
>>> forward(jnp.ones((1, 2)), layers).shape
(1, 2)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flaxen.errors.nnx import BroadcastStateUpdateError, LoopStructureError, TransformAxesError
from flaxen.nnx.graph import flatten
from flaxen.nnx.transforms import lift
from flaxen.nnx.transforms.axes import (
  Carry,
  add_axis,
  check_sizes,
  leaf_axes,
  plain_axes,
  remove_axis,
  state_axes,
)

__all__ = ["scan"]


def _split(items: list, axes: list) -> tuple[list, list, list]:
  """``(carried, scanned, broadcast)`` indices of ``items`` by their axis (``None`` items,
  where graph objects were taken out, belong to none)."""
  groups: tuple[list, list, list] = ([], [], [])
  for i, (item, axis) in enumerate(zip(items, axes, strict=True)):
    if item is not None:
      groups[0 if axis is Carry else 2 if axis is None else 1].append(i)
  return groups


class _Body:
  """Static facts about the traced body's output."""

  __slots__ = ("update", "treedef", "node_positions", "node_sources", "carry_leaves",
               "scan_leaves", "scan_axes")


def _to_front(x: Any, axis: int) -> Any:
  return jnp.moveaxis(x, axis, 0) if axis != 0 else x


def _from_front(x: Any, axis: int) -> Any:
  return jnp.moveaxis(x, 0, axis) if axis != 0 else x


class _Scanned:
  def __init__(self, f: Callable, in_axes: Any, out_axes: Any, metadata: Mapping[str, Any],
               scan_options: dict):
    functools.update_wrapper(self, f)
    self.f, self.in_axes, self.out_axes, self.metadata = f, in_axes, out_axes, metadata
    self.scan_options = scan_options

  def __get__(self, obj: Any, objtype: Any = None) -> Callable:
    return self if obj is None else functools.partial(self, obj)

  def __call__(self, *args: Any) -> Any:
    g = lift.GraphArgs(args)
    axes = leaf_axes("scan", "in_axes", self.in_axes, args)
    node_axes = [axes[p] for p in g.positions]
    value_axes = state_axes("scan", node_axes, g.paths, g.variables)
    arg_axes = plain_axes("scan", g.leaves, axes)
    check_sizes("scan", g, arg_axes, value_axes)
    leaf_groups = _split(g.leaves, arg_axes)
    value_groups = _split(g.values, value_axes)
    carry = ([g.leaves[i] for i in leaf_groups[0]], [g.values[j] for j in value_groups[0]])
    xs = ([_to_front(g.leaves[i], arg_axes[i]) for i in leaf_groups[1]],
          [_to_front(g.values[j], value_axes[j]) for j in value_groups[1]])
    info = _Body()
    body = functools.partial(self._body, g, leaf_groups, value_groups, value_axes, info)
    (carry_leaves, carry_values), (ys_leaves, ys_values) = jax.lax.scan(
      body, carry, xs, **self.scan_options)
    values = list(g.values)
    for j, v in zip(value_groups[0], carry_values, strict=True):
      values[j] = v
    for j, v in zip(value_groups[1], ys_values, strict=True):
      values[j] = _from_front(v, value_axes[j])
    g.write_back(info.update, values)
    out = [None] * info.treedef.num_leaves
    for i, v in zip(info.carry_leaves, carry_leaves, strict=True):
      out[i] = v
    for i, axis, v in zip(info.scan_leaves, info.scan_axes, ys_leaves, strict=True):
      out[i] = _from_front(v, axis)
    for p, k in zip(info.node_positions, info.node_sources, strict=True):
      out[p] = g.nodes[k]
    return info.treedef.unflatten(out)

  def _body(self, g: lift.GraphArgs, leaf_groups: tuple, value_groups: tuple,
            value_axes: list, info: _Body, carry: tuple, xs: tuple) -> tuple:
    leaves, values = list(g.leaves), list(g.values)
    for i, v in zip(leaf_groups[0] + leaf_groups[1], carry[0] + xs[0], strict=True):
      leaves[i] = v
    for j, v in zip(value_groups[0] + value_groups[1], carry[1] + xs[1], strict=True):
      values[j] = v
    args, inner, refs = g.rebuild(leaves, values)
    inner_vars = flatten(tuple(inner))[1] if self.metadata else []
    remove_axis(inner_vars, value_axes, self.metadata)
    out = self.f(*args)
    add_axis(inner_vars, value_axes, self.metadata)
    out_leaves, info.treedef, info.node_positions, out_nodes = lift.take_nodes(out)
    info.node_sources = tuple(_source(inner, n) for n in out_nodes)
    new_values, info.update = lift.capture(inner, refs, g.graphdef, [])
    if not info.update.same:
      raise LoopStructureError("scan", "the body changed the structure of its graph objects")
    for j in value_groups[2]:
      if new_values[j] is not values[j]:
        raise BroadcastStateUpdateError("scan", g.paths[j][1:], g.variables[j])
    out_axes = plain_axes("scan", out_leaves, leaf_axes("scan", "out_axes", self.out_axes, out))
    info.carry_leaves, info.scan_leaves, broadcast = _split(out_leaves, out_axes)
    if broadcast:
      raise TransformAxesError("scan", "out_axes gives axis None to an output",
                               "give each output nnx.Carry or an int axis")
    info.scan_axes = [out_axes[i] for i in info.scan_leaves]
    new_carry = ([out_leaves[i] for i in info.carry_leaves],
                 [new_values[j] for j in value_groups[0]])
    ys = ([out_leaves[i] for i in info.scan_leaves], [new_values[j] for j in value_groups[1]])
    return new_carry, ys


def _source(inner: list, node: Any) -> int:
  for k, n in enumerate(inner):
    if n is node:
      return k
  raise LoopStructureError(
    "scan", f"the body returned a {type(node).__name__} that is not one of its arguments")


def scan(f: Callable | None = None, *, length: int | None = None, reverse: bool = False,
         unroll: int | bool = 1, _split_transpose: bool = False, in_axes: Any = (Carry, 0),
         out_axes: Any = (Carry, 0),
         transform_metadata: Mapping[str, Any] = {}) -> Any:  # noqa: B006 (read only)
  """Loops ``f`` over slices of its arguments like ``jax.lax.scan``, updating graph objects.

  Args:
    f: the body; omitted, ``scan`` returns a decorator.
    length, reverse, unroll, _split_transpose: as in ``jax.lax.scan``.
    in_axes: a prefix of the arguments: ``nnx.Carry`` (carried), an int (scanned over that
      axis) or ``None`` (broadcast); a ``StateAxes`` gives them per filter for a graph
      object's Variables.
    out_axes: a prefix of the body's output: ``nnx.Carry`` marks the new carry, which must
      have the carried input's structure (graph objects in it must be the carried objects);
      ints mark outputs stacked along that axis.
    transform_metadata: with ``{nnx.PARTITION_NAME: name}``, the scanned axis is removed
      from the scanned Variables' sharding metadata inside the body.

  Returns:
    The looped function, returning the output with the final carry and stacked outputs.
    Carried and scanned Variables of argument objects are updated.
  """
  if f is None:
    return functools.partial(scan, length=length, reverse=reverse, unroll=unroll,
                             _split_transpose=_split_transpose, in_axes=in_axes,
                             out_axes=out_axes, transform_metadata=transform_metadata)
  options = dict(length=length, reverse=reverse, unroll=unroll,
                 _split_transpose=_split_transpose)
  return _Scanned(f, in_axes, out_axes, transform_metadata, options)
