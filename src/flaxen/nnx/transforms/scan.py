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
import numpy as np

from flaxen.errors.nnx import LoopStructureError, TransformAxesError
from flaxen.errors.nnx_transforms import VariableAliasingError
from flaxen.nnx.graph import flatten, unflatten
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.transforms import lift
from flaxen.nnx.transforms.axes import (
  Carry,
  StateAxes,
  add_axis,
  check_aliasing,
  check_prefixes,
  check_sizes,
  is_prefix_leaf,
  leaf_axes,
  plain_axes,
  positional,
  remove_axis,
  state_axes,
)
from flaxen.nnx.transforms.tree_mode import check_not_bound_method, check_unique
from flaxen.nnx.variables import Variable

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
  """Static facts about the traced body's output (leaves the scan as a static part of its
  stacked output, so a cached trace hands back the facts of its own trace)."""

  __slots__ = ("update", "treedef", "node_positions", "node_sources", "carry_leaves",
               "scan_leaves", "scan_axes", "new_graphdef", "new_axes", "layout", "added")


jax.tree_util.register_static(_Body)

_ARRAY_LIKE = (jax.Array, np.ndarray, np.generic, int, float, complex)


class _ById:
  """An unhashable static value, compared by identity."""

  __slots__ = ("value",)

  def __init__(self, value: Any):
    self.value = value

  def __eq__(self, other: object) -> bool:
    return isinstance(other, _ById) and other.value is self.value

  def __hash__(self) -> int:
    return id(self.value)


class _Plan:
  """What the body needs besides the traced values, as a static (hashable) part of the
  carry: the arguments' structure, which leaves and values are carried / scanned /
  broadcast, and the broadcast leaves that are not arrays (arrays pass through the carry
  unchanged, never closed over: a cached trace must not keep one call's constants)."""

  __slots__ = ("graphdef", "treedef", "positions", "leaf_groups", "value_groups",
               "value_axes", "node_axes", "passed", "static", "num_leaves", "num_values",
               "_key")

  def __init__(self, g: lift.GraphArgs, arg_axes: list, value_axes: list, node_axes: list):
    self.graphdef, self.treedef, self.positions = g.graphdef, g.treedef, g.positions
    self.node_axes = tuple(node_axes)
    self.leaf_groups = tuple(map(tuple, _split(g.leaves, arg_axes)))
    self.value_groups = tuple(map(tuple, _split(g.values, value_axes)))
    self.value_axes = tuple(value_axes)
    broadcast = self.leaf_groups[2]
    self.passed = tuple(i for i in broadcast if isinstance(g.leaves[i], _ARRAY_LIKE))
    self.static = tuple((i, g.leaves[i]) for i in broadcast if i not in self.passed)
    self.num_leaves, self.num_values = len(g.leaves), len(g.values)
    static_key = []
    for i, v in self.static:
      try:
        hash(v)
      except TypeError:
        v = _ById(v)
      static_key.append((i, type(v), v))
    self._key = (self.graphdef, self.treedef, self.positions, self.leaf_groups,
                 self.value_groups, self.value_axes, self.node_axes, self.passed,
                 tuple(static_key))

  def __eq__(self, other: object) -> bool:
    return isinstance(other, _Plan) and other._key == self._key

  def __hash__(self) -> int:
    return hash(self._key)


jax.tree_util.register_static(_Plan)


def _to_front(x: Any, axis: int) -> Any:
  return jax.tree.map(lambda a: jnp.moveaxis(a, axis, 0), x) if axis != 0 else x


def _from_front(x: Any, axis: int) -> Any:
  return jax.tree.map(lambda a: jnp.moveaxis(a, 0, axis), x) if axis != 0 else x


def _check_axes(in_axes: Any, out_axes: Any, graph: bool, graph_updates: bool) -> None:
  """What ``in_axes``/``out_axes`` may say, checked when the scan is made."""
  check_prefixes("nnx.scan", graph, graph_updates, in_axes=in_axes, out_axes=out_axes)
  carries = []
  for name, spec in (("in_axes", in_axes), ("out_axes", out_axes)):
    top = spec if type(spec) is tuple else (spec,)
    n = sum(a is Carry for a in top)
    nested = sum(a is Carry for a in jax.tree_util.tree_leaves(top, is_leaf=is_prefix_leaf))
    if nested != n:
      raise TransformAxesError("scan", f"{name}={spec!r} has nnx.Carry nested inside an "
                               "argument's prefix", "give nnx.Carry for a whole argument")
    if n > 1:
      raise TransformAxesError("scan", f"Found multiple Carry definitions in {name}",
                               "carry one argument (a tuple, if several values are carried)")
    carries.append(n)
    if name == "out_axes":
      for a in jax.tree_util.tree_leaves(top, is_leaf=is_prefix_leaf):
        if a is None or (isinstance(a, StateAxes) and None in a.axes):
          raise TransformAxesError(
            "scan", "Cannot broadcast output state" + (
              f". Got StateAxes {a!r} in out_axes" if a is not None else
              ": out_axes gives axis None to an output"),
            "give each output nnx.Carry or an int axis")
  if carries[0] != carries[1]:
    raise TransformAxesError(
      "scan", "If one of in_axes or out_axes has Carry, the other must also have Carry",
      f"got in_axes={in_axes!r}, out_axes={out_axes!r}")


class _Scanned:
  def __init__(self, f: Callable, in_axes: Any, out_axes: Any, metadata: Mapping[str, Any],
               scan_options: dict, graph: bool | None = None,
               graph_updates: bool | None = None):
    check_not_bound_method(f, "nnx.scan")
    functools.update_wrapper(self, f)
    self.f, self.in_axes, self.out_axes, self.metadata = f, in_axes, out_axes, metadata
    self.scan_options = scan_options
    self.graph = resolve_graph(graph)
    self.graph_updates = resolve_graph_updates(graph_updates)
    _check_axes(in_axes, out_axes, self.graph, self.graph_updates)
    self._body = functools.partial(_Scanned._run_body, self)  # one object: jax's trace cache

  def __get__(self, obj: Any, objtype: Any = None) -> Callable:
    return self if obj is None else functools.partial(self, obj)

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    args, kwargs = positional(self.f, args, kwargs)
    if kwargs:
      raise TransformAxesError("scan", f"keyword-only arguments {list(kwargs)} have no "
                               "place in in_axes", "pass them positionally")
    if self.in_axes is Carry and len(args) != 1:
      raise TransformAxesError(
        "scan", f"When in_axes=Carry, the function must take exactly one argument (got "
        f"{len(args)})", "pack the arguments in one tuple, or give in_axes per argument")
    if not self.graph:
      check_unique(args, "nnx.scan")
    g = lift.GraphArgs(args)
    axes = leaf_axes("scan", "in_axes", self.in_axes, args)
    node_axes = [axes[p] for p in g.positions]
    check_aliasing("nnx.scan", g.nodes, node_axes)
    value_axes = state_axes("scan", node_axes, g.paths, g.variables)
    if not self.graph_updates or not self.graph:  # broadcast Variables may change: carried
      value_axes = [Carry if a is None else a for a in value_axes]
    arg_axes = plain_axes("scan", g.leaves, axes)
    check_sizes("scan", g, arg_axes, value_axes)
    plan = _Plan(g, arg_axes, value_axes, node_axes)
    lg, vg = plan.leaf_groups, plan.value_groups
    carry = (plan, [g.leaves[i] for i in lg[0]], [g.values[j] for j in vg[0]],
             [g.leaves[i] for i in plan.passed], [g.values[j] for j in vg[2]])
    xs = ([_to_front(g.leaves[i], arg_axes[i]) for i in lg[1]],
          [_to_front(g.values[j], value_axes[j]) for j in vg[1]])
    # self._body is made once: jax caches the body's trace by its identity and the
    # structure of carry and xs (the plan is a static part of it), so a repeated call
    # with the same structure skips tracing the body
    (_, carry_leaves, carry_values, _, _), (ys_leaves, ys_values, ys_new, ys_added, info) = (
      jax.lax.scan(self._body, carry, xs, **self.scan_options))
    values = list(g.values)
    for j, v in zip(vg[0], carry_values, strict=True):
      values[j] = v
    for j, v in zip(vg[1], ys_values, strict=True):
      values[j] = _from_front(v, value_axes[j])
    if info.layout is not None:  # Variables added by the body: the new structure's values
      added = dict(zip([k for k, _ in info.added], [
        _from_front(v, a) for v, (_, a) in zip(ys_added, info.added, strict=True)], strict=True))
      values = [values[j] if j >= 0 else added[k] for k, j in enumerate(info.layout)]
    g.write_back(info.update, values)
    out = [None] * info.treedef.num_leaves
    for i, v in zip(info.carry_leaves, carry_leaves, strict=True):
      out[i] = v
    for i, axis, v in zip(info.scan_leaves, info.scan_axes, ys_leaves, strict=True):
      out[i] = _from_front(v, axis)
    new_nodes = []
    if info.new_graphdef is not None:
      new_nodes, _ = unflatten(info.new_graphdef, [
        _from_front(v, a) for v, a in zip(ys_new, info.new_axes, strict=True)])
    for p, k in zip(info.node_positions, info.node_sources, strict=True):
      out[p] = g.nodes[k] if k >= 0 else new_nodes[-1 - k]
    return info.treedef.unflatten(out)

  def _run_body(self, carry: tuple, xs: tuple) -> tuple:
    plan, carry_leaves, carry_values, passed_leaves, passed_values = carry
    lg, vg = plan.leaf_groups, plan.value_groups
    leaves, values = [None] * plan.num_leaves, [None] * plan.num_values
    for i, v in plan.static:
      leaves[i] = v
    for i, v in zip(lg[0] + lg[1] + plan.passed, carry_leaves + xs[0] + passed_leaves,
                    strict=True):
      leaves[i] = v
    for j, v in zip(vg[0] + vg[1] + vg[2], carry_values + xs[1] + passed_values, strict=True):
      values[j] = v
    args, inner, refs = lift.rebuild(plan.graphdef, values, leaves, plan.treedef,
                                     plan.positions)
    _, inner_leaves, inner_paths, _ = flatten(tuple(inner))
    inner_vars = inner_leaves if self.metadata else []
    remove_axis(inner_vars, plan.value_axes, self.metadata)
    out = self.f(*args)
    add_axis(inner_vars, plan.value_axes, self.metadata)
    info = _Body()
    out_leaves, info.treedef, info.node_positions, out_nodes = lift.take_nodes(out)
    all_out_axes = leaf_axes("scan", "out_axes", self.out_axes, out)
    node_out_axes = [all_out_axes[p] for p in info.node_positions]
    info.node_sources, fresh = self._sources(inner, out_nodes, node_out_axes)
    ys_new: list = []
    info.new_graphdef, info.new_axes = None, []
    if fresh:  # graph objects made in the body: stacked along their out axis
      info.new_graphdef, new_vars, paths, _ = flatten(tuple(n for n, _ in fresh))
      info.new_axes = state_axes("scan", [a for _, a in fresh], paths, new_vars)
      ys_new = [_to_front(lift.raw(v), a) for v, a in zip(new_vars, info.new_axes, strict=True)]
    info.layout, info.added, ys_added = None, (), []
    if self.graph and self.graph_updates:
      new_values, info.update = lift.capture(inner, refs, plan.graphdef, [])
      if not info.update.same:
        new_values, ys_added = self._new_variables(plan, info, inner, inner_leaves,
                                                   inner_paths, new_values)
    else:  # no structural change counts: the input Variables' values, raw arrays by path
      _, after, after_paths, _ = flatten(tuple(inner))
      by_path = dict(zip(after_paths, after, strict=True))
      new_values = [lift.raw(x if isinstance(x, Variable) else by_path.get(p, x))
                    for x, p in zip(inner_leaves, inner_paths, strict=True)]
      info.update = lift.GraphUpdate(True, plan.graphdef, tuple(range(len(refs))), len(inner))
    out_axes = plain_axes("scan", out_leaves, all_out_axes)
    info.carry_leaves, info.scan_leaves, broadcast = _split(out_leaves, out_axes)
    if broadcast:
      raise TransformAxesError("scan", "out_axes gives axis None to an output: Cannot "
                               "broadcast output state", "give each output nnx.Carry or an "
                               "int axis")
    info.scan_axes = [out_axes[i] for i in info.scan_leaves]
    new_carry = (plan, [out_leaves[i] for i in info.carry_leaves],
                 [new_values[j] for j in vg[0]], passed_leaves, passed_values)
    ys = ([out_leaves[i] for i in info.scan_leaves], [new_values[j] for j in vg[1]], ys_new,
          ys_added, info)
    return new_carry, ys

  def _new_variables(self, plan: _Plan, info: _Body, inner: list, inner_leaves: list,
                     inner_paths: list, new_values: list) -> tuple[list, list]:
    """Graph updates: the body added Variables (``sow``, a new attribute). Each is stacked
    along its object's axis; the input Variables keep their place. Returns the input
    Variables' new values and the added ones moved to the front."""
    _, leaves, paths, _ = flatten(tuple(inner))
    # Variables are found by identity, raw arrays (replaced on assignment) by path
    old = {id(x): j for j, x in enumerate(inner_leaves) if isinstance(x, Variable)}
    old_paths = {p: j for j, (p, x) in enumerate(zip(inner_paths, inner_leaves, strict=True))
                 if not isinstance(x, Variable)}
    info.layout = tuple(old.get(id(x), -1) if isinstance(x, Variable) else old_paths.get(p, -1)
                        for x, p in zip(leaves, paths, strict=True))
    if len({j for j in info.layout if j >= 0}) != len(inner_leaves):
      raise LoopStructureError("scan", "the body removed or replaced Variables of its graph "
                               "objects")
    axes = state_axes("scan", list(plan.node_axes), paths, leaves)
    added = []
    for k, j in enumerate(info.layout):
      if j < 0:
        if not isinstance(axes[k], int) or axes[k] is Carry:
          raise LoopStructureError(
            "scan", f"the body added {type(leaves[k]).__name__} at "
            f"{'/'.join(map(str, paths[k][1:]))}, whose axis is {axes[k]!r}: a Variable made "
            "in the body can only be stacked (give its type an int axis in a StateAxes)")
        added.append((k, axes[k]))
    info.added = tuple(added)
    values = [None] * len(inner_leaves)
    for k, j in enumerate(info.layout):
      if j >= 0:
        values[j] = new_values[k]
    return values, [_to_front(new_values[k], a) for k, a in added]

  def _sources(self, inner: list, out_nodes: list, axes: list) -> tuple[tuple, list]:
    """Where each output graph object comes from: ``k >= 0``, input object ``k`` (a carry);
    ``-1 - i``, the ``i``-th object made in the body (scanned). Returns the sources and the
    new objects with their axes."""
    sources, fresh = [], []
    for node, axis in zip(out_nodes, axes, strict=True):
      k = next((k for k, n in enumerate(inner) if n is node), -1)
      if axis is Carry:
        if k < 0:
          raise LoopStructureError(
            "scan", f"the body returned a new {type(node).__name__} as its carry: "
            + ("Carry references must be the same between iterations"
               if self.graph and self.graph_updates else
               "scan Variable identity must be preserved across iterations"))
        sources.append(k)
      elif k >= 0 and not (self.graph and self.graph_updates):
        raise VariableAliasingError("nnx.scan", node, ())
      elif k >= 0:
        sources.append(k)
      else:
        fresh.append((node, axis))
        sources.append(-len(fresh))
    return tuple(sources), fresh


def scan(f: Callable | None = None, *, length: int | None = None, reverse: bool = False,
         unroll: int | bool = 1, _split_transpose: bool = False, in_axes: Any = (Carry, 0),
         out_axes: Any = (Carry, 0),
         transform_metadata: Mapping[str, Any] = {},  # noqa: B006 (read only)
         graph: bool | None = None, graph_updates: bool | None = None) -> Any:
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
    graph: graph mode (shared references kept) or, if False, tree mode (a Variable may
      appear only once among the arguments). ``None``: ``nnx.set_graph_mode``'s value.
    graph_updates: with graph updates (graph mode only), ``StateAxes`` are allowed and
      what the body writes to a broadcast Variable is dropped (every iteration sees the
      input value, as broadcast Rng streams need); without, a broadcast Variable the body
      writes is carried from one iteration to the next, and only Variable values flow back.

  Returns:
    The looped function, returning the output with the final carry and stacked outputs.
    Carried and scanned Variables of argument objects are updated.
  """
  if f is None:
    return functools.partial(scan, length=length, reverse=reverse, unroll=unroll,
                             _split_transpose=_split_transpose, in_axes=in_axes,
                             out_axes=out_axes, transform_metadata=transform_metadata,
                             graph=graph, graph_updates=graph_updates)
  options = dict(length=length, reverse=reverse, unroll=unroll,
                 _split_transpose=_split_transpose)
  return _Scanned(f, in_axes, out_axes, transform_metadata, options, graph, graph_updates)
