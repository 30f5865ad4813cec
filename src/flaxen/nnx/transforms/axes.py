"""Axis specifications of ``nnx.vmap`` and ``nnx.scan``: ``StateAxes`` and ``Carry``.

``in_axes``/``out_axes`` are prefixes of the argument (output) pytree, as in ``jax.vmap``,
with graph objects as leaves. The axis given to a graph object applies to all its Variables,
unless it is a ``StateAxes``, which gives an axis per filter (the first matching filter
wins). An axis is an int, ``None`` (broadcast) or, for ``nnx.scan``, ``nnx.Carry``.

>>> from flaxen import nnx
>>> axes = nnx.StateAxes({nnx.Param: 0, ...: None})
>>> axes.axis_for("vmap", ("w",), nnx.Param(1.0)), axes.axis_for("vmap", ("n",), nnx.BatchStat(1))
(0, None)
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import jax

from flaxen.errors.nnx import TransformAxesError, UnmatchedStateAxesError
from flaxen.errors.nnx_transforms import (
  GraphNodePrefixError,
  InconsistentAliasingError,
  PrefixFilterError,
)
from flaxen.nnx import filterlib, graph
from flaxen.nnx.object import Object, is_graph_node
from flaxen.nnx.rnglib import RngState
from flaxen.nnx.spmd import PARTITION_NAME
from flaxen.nnx.state import State
from flaxen.nnx.transforms.prefix import Prefix
from flaxen.nnx.variables import Variable

__all__ = ["Carry", "StateAxes", "PARTITION_NAME", "leaf_axes", "state_axes", "plain_axes",
           "axis_values", "check_sizes", "remove_axis", "add_axis", "resolve", "is_prefix_leaf",
           "check_prefixes", "check_aliasing", "positional"]



class Carry:
  """Marks the carried argument / output of ``nnx.scan`` (used as the class itself)."""


class PathIs:
  """Filter: the Variable at exactly ``path`` (what a State given as axes is made of)."""

  def __init__(self, path: tuple):
    self.path = tuple(path)

  def __call__(self, path: tuple, _: Any) -> bool:
    return tuple(path) == self.path

  def __eq__(self, other: object) -> bool:
    return isinstance(other, PathIs) and other.path == self.path

  def __hash__(self) -> int:
    return hash(self.path)

  def __repr__(self) -> str:
    return f"PathIs({self.path!r})"


class StateAxes:
  """Per-filter axes for the state of a graph object passed through vmap or scan.

  Args:
    filter_axes: a mapping (or pairs) from filters to an int axis, ``None`` (broadcast) or
      ``nnx.Carry`` (scan only).
  """

  def __init__(self, filter_axes: Mapping[Any, Any] | Iterable[tuple[Any, Any]], /):
    if isinstance(filter_axes, State):  # a State of axes: one filter per path
      filter_axes = [(PathIs(path), axis) for path, axis in filter_axes.flat_state()]
    items = tuple(filter_axes.items() if isinstance(filter_axes, Mapping) else filter_axes)
    self._filters = tuple(f for f, _ in items)
    self._axes = tuple(a for _, a in items)
    self._predicates = tuple(filterlib.to_predicate(f) for f in self._filters)

  @property
  def filters(self) -> tuple:
    return self._filters

  @property
  def axes(self) -> tuple:
    return self._axes

  def items(self) -> zip:
    return zip(self._filters, self._axes, strict=True)

  def axis_for(self, transform: str, path: tuple, variable: Any) -> Any:
    """The axis of the Variable at ``path`` (within its object)."""
    for predicate, axis in zip(self._predicates, self._axes, strict=True):
      if predicate(path, variable):
        return axis
    raise UnmatchedStateAxesError(transform, path, variable, self._filters)

  def map_prefix(self, path: tuple, variable: Any) -> Any:
    """``axis_for`` under the name every prefix filter shares (``StateSharding`` too)."""
    return self.axis_for("vmap", path, variable)

  def __eq__(self, other: object) -> bool:
    return isinstance(other, StateAxes) and (self._filters, self._axes) == (other._filters,
                                                                            other._axes)

  def __hash__(self) -> int:
    return hash((self._filters, self._axes))

  def __repr__(self) -> str:
    return f"StateAxes({dict(self.items())!r})"


def _is_axis(x: Any) -> bool:
  return x is None or x is Carry or isinstance(x, StateAxes)


def _is_filter(x: Any) -> bool:
  """A prefix filter (``StateAxes``, ``StateSharding``): its class has ``map_prefix``
  (asked of the class: an ``Rngs`` answers any attribute with its default stream)."""
  return hasattr(type(x), "map_prefix")


def is_prefix_leaf(x: Any) -> bool:
  """Where a prefix stops for the pytree flatten that matches it to the arguments: an axis,
  a prefix filter (anything with ``map_prefix``), or a graph object (a tree-mode prefix
  shaped like the Module, e.g. from ``nnx.prefix``), resolved per Variable by
  ``resolve``."""
  return _is_axis(x) or _is_filter(x) or isinstance(x, Prefix) or is_graph_node(x)


def _is_container(x: Any) -> bool:
  return (isinstance(x, Mapping | list | Object) or type(x) is tuple
          or hasattr(x, "__state__") or hasattr(x, "_graph_items"))


def _child(prefix: Any, key: Any) -> Any:
  if hasattr(prefix, "__state__"):  # a graph-mode nnx.prefix result: (graphdef, state)
    prefix = prefix.__state__
  if isinstance(prefix, Object):
    return graph.child(prefix, key)
  return prefix[key]


def resolve(prefix: Any, path: tuple, variable: Any) -> Any:
  """The prefix of the Variable at ``path`` (within its argument) from its argument's
  prefix: the prefix itself, a prefix filter's choice, or the entry at ``path`` of a prefix
  shaped like the argument (a Module or State of axes, as ``nnx.prefix`` makes)."""
  if isinstance(prefix, Prefix):
    return prefix.prefix_of(path, variable)
  for i, key in enumerate(path):
    if _is_filter(prefix):
      return prefix.map_prefix(path[i:], variable)
    if not _is_container(prefix) or isinstance(prefix, Variable):
      break
    prefix = _child(prefix, key)
  if _is_filter(prefix):
    return prefix.map_prefix((), variable)
  return prefix.value if isinstance(prefix, Variable) else prefix


def leaf_axes(transform: str, name: str, prefix: Any, tree: Any) -> list:
  """The axis of every leaf of ``tree`` (graph objects are leaves), from the prefix tree
  ``prefix``, in the order ``lift.find_nodes`` lists them."""
  axes, prefix_def = jax.tree_util.tree_flatten(prefix, is_leaf=is_prefix_leaf)
  try:
    subtrees = prefix_def.flatten_up_to(tree)
  except (ValueError, TypeError) as e:
    raise TransformAxesError(
      transform, f"{name}={prefix!r} is not a prefix of the structure it applies to "
      f"({jax.tree_util.tree_structure(tree, is_leaf=is_graph_node)}): {e}",
      "give one axis per argument (a tuple as long as the arguments), or a single axis "
      "for all of them") from None
  out = []
  for axis, sub in zip(axes, subtrees, strict=True):
    n = len(jax.tree_util.tree_leaves(sub, is_leaf=is_graph_node))
    out.extend([axis] * n)
  return out


def state_axes(transform: str, node_axes: list, paths: list, variables: list) -> list:
  """The axis of every state value: its node's axis, resolved per Variable for StateAxes
  and prefixes shaped like the node."""
  out = []
  for path, var in zip(paths, variables, strict=True):
    axis = node_axes[path[0]]
    if isinstance(axis, StateAxes):
      out.append(axis.axis_for(transform, path[1:], var))
    elif _is_axis(axis) or isinstance(axis, int):
      out.append(axis)
    else:
      out.append(resolve(axis, path[1:], var))
  return out


def plain_axes(transform: str, leaves: list, axes: list) -> list:
  """Axes of the non-graph leaves (``None`` where a graph object was taken out); a
  StateAxes given for an array is a mistake."""
  out = []
  for leaf, axis in zip(leaves, axes, strict=True):
    if leaf is None and axis is not Carry:  # a graph argument's place (or a None argument)
      axis = None
    elif isinstance(axis, StateAxes):
      if leaf is not None:
        raise TransformAxesError(
          transform, f"StateAxes {axis!r} given for {type(leaf).__name__}, which is not a "
          "graph object", "use an int axis or None for arrays")
      axis = None
    out.append(axis)
  return out


def axis_values(*specs: Any) -> list:
  """Every distinct int/None axis in the given specs (StateAxes included), in order."""
  found: list = []
  for axis in jax.tree_util.tree_leaves(specs, is_leaf=is_prefix_leaf):
    for a in _filter_values(axis) if _is_filter(axis) else _values(axis):
      if a is not Carry and a not in found:
        found.append(a)
  return found


def _filter_values(prefix: Any) -> tuple:
  """The axes (specs) a prefix filter can choose: ``StateAxes.axes``,
  ``StateSharding.shardings``."""
  for name in ("axes", "shardings"):
    if isinstance(getattr(prefix, name, None), tuple):
      return getattr(prefix, name)
  return ()


def _values(prefix: Any) -> list:
  """The axes inside a prefix shaped like an argument (itself, for an axis)."""
  if isinstance(prefix, Variable):
    return [prefix.value]
  if isinstance(prefix, Prefix):
    return prefix.values()
  if isinstance(prefix, Object):  # a tree-mode nnx.prefix copy: its Variables hold the axes
    return [x.value for x in graph.flatten(prefix)[1] if isinstance(x, Variable)]
  if not _is_container(prefix):
    return [prefix]
  if hasattr(prefix, "__state__"):
    prefix = prefix.__state__
  if hasattr(prefix, "_graph_items"):
    items = [v for _, v in prefix._graph_items()]
  else:
    items = list(prefix.values() if isinstance(prefix, Mapping) else prefix)
  return [a for item in items for a in _values(item)]


def check_sizes(transform: str, g: Any, arg_axes: list, value_axes: list) -> None:
  """Every mapped value (argument leaf or state value of ``lift.GraphArgs`` ``g``) must have
  its axis, and all must agree on its size: else an error naming the values involved."""
  named = [(f"argument leaf {i}", x, a, None)
           for i, (x, a) in enumerate(zip(g.leaves, arg_axes, strict=True))]
  named += [(f"{type(v).__name__} at {'/'.join(map(str, p[1:])) or '<root>'} of graph "
             f"argument {p[0]}", x, a, v)
            for v, p, x, a in zip(g.variables, g.paths, g.values, value_axes, strict=True)]
  first = None
  for name, x, axis, var in named:
    if not isinstance(axis, int) or not hasattr(x, "ndim"):
      continue
    if not -x.ndim <= axis < x.ndim:
      raise TransformAxesError(
        transform, f"{name} has shape {tuple(x.shape)}, which has no axis {axis}",
        "split the Rng streams first: `nnx.split_rngs(splits=n)`, or broadcast them with "
        "`nnx.StateAxes({..., nnx.RngState: None})`" if isinstance(var, RngState) else
        "give it axis None to broadcast it, or pass a value with the mapped axis")
    if first is None:
      first = (name, x.shape[axis])
    elif x.shape[axis] != first[1]:
      raise TransformAxesError(
        transform, f"mapped axis sizes differ: {first[0]} has {first[1]}, {name} has "
        f"{x.shape[axis]}", "give every mapped value the same size along its axis")


def remove_axis(variables: list, axes: list, metadata: Mapping[str, Any]) -> None:
  """Inside a transform: each Variable with a mapped axis loses it from its sharding
  names (``Variable.remove_axis``, which runs its hooks) and from the tuple metadata named
  by ``metadata``'s other keys."""
  _move_axes(variables, axes, metadata, add=False)


def add_axis(variables: list, axes: list, metadata: Mapping[str, Any]) -> None:
  """Inserts ``metadata[PARTITION_NAME]`` at each Variable's mapped axis in its sharding
  names (``Variable.add_axis``), and ``metadata[k]`` into its tuple metadata ``k``."""
  _move_axes(variables, axes, metadata, add=True)


def _move_axes(variables: list, axes: list, metadata: Mapping[str, Any], add: bool) -> None:
  if PARTITION_NAME not in metadata:
    return
  name = metadata[PARTITION_NAME]
  other = [(k, v) for k, v in metadata.items() if k != PARTITION_NAME]
  for var, axis in zip(variables, axes, strict=True):
    if not isinstance(var, Variable) or not isinstance(axis, int) or axis is Carry:
      continue
    meta = var._meta
    for k, v in other:  # as Flax: only metadata that already is a non-empty tuple
      t = meta.get(k)
      if isinstance(t, tuple) and t:
        if add:
          at = axis if axis >= 0 else len(t) + axis + 1
          meta[k] = (*t[:at], v, *t[at:])
        else:
          at = axis if axis >= 0 else len(t) + axis
          meta[k] = t[:at] + t[at + 1:]
    if add:
      var.add_axis(axis, name)
    else:
      var.remove_axis(axis, name)


def positional(f: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
  """``kwargs`` bound to ``f``'s positional parameters where it has them, so that
  ``in_axes`` (given per position) covers them: ``f(self, key=k)`` is called as
  ``f(self, k)``. Returns the arguments and the keyword-only rest."""
  if not kwargs:
    return args, kwargs
  try:
    bound = inspect.signature(f).bind(*args, **kwargs)
  except (TypeError, ValueError):
    return args, kwargs  # let the call itself report the mismatch
  return bound.args, bound.kwargs


def check_prefixes(transform: str, graph: bool, graph_updates: bool, **prefixes: Any) -> None:
  """Checks ``in_axes``/``out_axes``-like prefixes when a transform is made: no graph
  objects in them in graph mode (tree mode takes ``nnx.prefix``'s copies, Variables
  holding axes), and prefix filters (``StateAxes``, ``StateSharding``) only in graph mode
  with graph updates."""
  for name, prefix in prefixes.items():
    for leaf in jax.tree_util.tree_leaves(prefix, is_leaf=is_prefix_leaf):
      if graph and is_graph_node(leaf):
        raise GraphNodePrefixError(transform, name, leaf)
      if _is_filter(leaf) and not (graph and graph_updates):
        raise PrefixFilterError(transform, name, type(leaf).__name__)


def check_aliasing(transform: str, nodes: list, node_axes: list) -> None:
  """One graph argument passed twice must get the same axis (spec) for each of its
  Variables both times (``0`` and ``StateAxes({...: 0})`` agree)."""
  seen: dict[int, Any] = {}
  for node, axis in zip(nodes, node_axes, strict=True):
    first = seen.setdefault(id(node), axis)
    if first is axis or first == axis:
      continue
    _, variables, paths, _ = graph.flatten(node)
    paths = [(0, *p) for p in paths]
    a = state_axes(transform.removeprefix("nnx."), [first], paths, variables)
    b = state_axes(transform.removeprefix("nnx."), [axis], paths, variables)
    if a != b:
      raise InconsistentAliasingError(transform, node, first, axis)
