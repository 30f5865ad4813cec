"""Transforms without graph updates: tree mode, and graph mode with ``graph_updates=False``.

The FLIP "Tree Mode NNX" keeps one transform core and drops two things from it: structural
changes made inside a transform no longer reach the caller, and prefix filters (``DiffState``,
``StateSharding``, ``StateAxes``) are gone. What flows back is the new value of each input
Variable; graph objects in the output are new objects. Tree mode (``graph=False``)
additionally treats Modules as pytrees, so one Variable may appear only once among the
arguments; graph mode keeps shared references.

The pieces here are shared by ``nnx.jit``, ``nnx.grad`` and the other transforms: the input
side reuses ``lift`` (flatten the graph arguments once, rebuild them inside), and
``Snapshot`` / ``pack_output`` replace ``lift.capture``.

>>> import jax.numpy as jnp
>>> from flaxen import errors, nnx
>>> v = nnx.Param(jnp.ones(2))
>>> try:
...   nnx.jit(lambda a, b: None, graph=False)(v, v)
... except errors.DuplicateVariableError as e:
...   print(e.paths)
((SequenceKey(idx=0), SequenceKey(idx=0)), (SequenceKey(idx=0), SequenceKey(idx=1)))
"""

from __future__ import annotations

from typing import Any

import jax

from flaxen.errors.nnx_transforms import (
  BoundMethodError,
  DuplicateVariableError,
  GraphNodePrefixError,
  PrefixFilterError,
  VariableAliasingError,
)
from flaxen.nnx.graph import GraphDef, flatten, unflatten
from flaxen.nnx.object import is_graph_node
from flaxen.nnx.transforms import lift
from flaxen.nnx.variables import Variable

__all__ = ["check_not_bound_method", "check_unique", "check_no_prefix_filter",
           "check_no_graph_prefix", "Snapshot", "OutNodes", "pack_output", "PureArgs"]


def _is_variable(x: Any) -> bool:
  return isinstance(x, Variable)


def check_not_bound_method(fun: Any, transform: str) -> None:
  """A bound method of a graph object would capture its object instead of passing it."""
  owner = getattr(fun, "__self__", None)
  if owner is not None and is_graph_node(owner) and callable(fun):
    raise BoundMethodError(transform, fun)


def check_unique(tree: Any, transform: str) -> None:
  """Tree mode: raises ``DuplicateVariableError`` naming both paths of a Variable that
  appears twice in ``tree`` (Modules walked as the pytrees they are)."""
  seen: dict[int, tuple] = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_variable)[0]:
    if isinstance(leaf, Variable):
      first = seen.setdefault(id(leaf), path)
      if first is not path:
        raise DuplicateVariableError(transform, leaf, first, path)


def check_no_prefix_filter(spec: Any, kind: type, transform: str, argument: str) -> None:
  """Without graph updates there are no prefix filters: ``PrefixFilterError`` if ``spec``
  holds a ``kind`` (``DiffState``, ``StateSharding``...)."""
  for leaf in jax.tree.leaves(spec, is_leaf=lambda x: isinstance(x, kind)):
    if isinstance(leaf, kind):
      raise PrefixFilterError(transform, argument, kind.__name__)


def check_no_graph_prefix(spec: Any, transform: str, argument: str) -> None:
  """A prefix of specs holds specs, never Modules or Variables (a common slip: the model
  passed where its sharding belongs)."""
  for leaf in jax.tree.leaves(spec, is_leaf=is_graph_node):
    if is_graph_node(leaf):
      raise GraphNodePrefixError(transform, argument, leaf)


class Snapshot:
  """The rebuilt inputs' leaves (Variables and raw arrays) and their values as a traced
  function starts; ``updates`` says which Variables it gave a new value."""

  __slots__ = ("leaves", "values")

  def __init__(self, inner_nodes: list):
    self.leaves = flatten(tuple(inner_nodes))[1]
    self.values = [lift.raw(x) for x in self.leaves]

  def variable_ids(self) -> set[int]:
    return {id(x) for x in self.leaves if isinstance(x, Variable)}

  def updates(self, trim: bool) -> tuple[tuple[int, ...], list]:
    """``(indices, new values)`` of the Variables to write back: those replaced, or every
    Variable unless ``trim`` (a donated buffer must come back even when unchanged)."""
    written, values = [], []
    for j, (x, old) in enumerate(zip(self.leaves, self.values, strict=True)):
      if isinstance(x, Variable):
        new = x._raw
        if not trim or new is not old:
          written.append(j)
          values.append(new)
    return tuple(written), values


class OutNodes:
  """Static description of the graph objects in a transform's output, which leave it as
  ``(leaves with None at the nodes, node values)``; ``unflatten`` builds new objects."""

  __slots__ = ("treedef", "positions", "graphdef")

  def __init__(self, treedef: Any, positions: tuple[int, ...], graphdef: GraphDef):
    self.treedef = treedef
    self.positions = positions
    self.graphdef = graphdef

  def unflatten(self, packed: tuple) -> Any:
    leaves, values = packed
    nodes, _ = unflatten(self.graphdef, list(values))
    leaves = list(leaves)
    for i, node in zip(self.positions, nodes, strict=True):
      leaves[i] = node
    return self.treedef.unflatten(leaves)


jax.tree_util.register_static(OutNodes)


def pack_output(out: Any, inputs: set[int], transform: str, tree: bool) -> tuple[Any, Any]:
  """``(packed output, OutNodes or None)``: graph objects in ``out`` taken apart into
  values; an input Variable found there raises ``VariableAliasingError`` (its value, not
  the object, may leave)."""
  leaves, treedef, positions, nodes = lift.take_nodes(out)
  if not positions:
    return out, None
  if tree:
    check_unique(nodes, transform)
  graphdef, node_leaves, paths, _ = flatten(tuple(nodes))
  for x, path in zip(node_leaves, paths, strict=True):
    if isinstance(x, Variable) and id(x) in inputs:
      raise VariableAliasingError(transform, x, (positions[path[0]], *path[1:]))
  values = [lift.raw(x) for x in node_leaves]
  return (leaves, values), OutNodes(treedef, positions, graphdef)


class PureArgs:
  """Positional arguments taken apart per argument for a JAX transform (``grad``, ``vjp``,
  ``jvp``, ``custom_vjp``, ``eval_shape``): ``pure[a]`` is argument ``a`` as a pytree JAX
  accepts, ``(its leaves with None at the graph objects, the values of the state those
  objects own)``. All graph objects are flattened together, so graph mode keeps shared
  references (a Variable's value lives in the first argument that reaches it); tree mode
  rejects them.
  """

  def __init__(self, args: tuple, tree: bool, transform: str):
    if tree:
      check_unique(args, transform)
    self.per_arg = [lift.find_nodes(a) for a in args]
    nodes, self.node_arg = [], []
    for a, (leaves, _, positions) in enumerate(self.per_arg):
      nodes += [leaves[p] for p in positions]
      self.node_arg += [a] * len(positions)
    self.nodes = nodes
    self.graphdef, self.state, paths, self.refs = flatten(tuple(nodes))
    self.values = [lift.raw(x) for x in self.state]
    self.leaf_arg = [self.node_arg[path[0]] for path in paths]
    self.pure = tuple(self._pure_arg(a, self.values) for a in range(len(args)))

  def _pure_arg(self, a: int, values: list) -> tuple:
    leaves, _, positions = self.per_arg[a]
    leaves = list(leaves)
    for p in positions:
      leaves[p] = None
    return leaves, [v for v, owner in zip(values, self.leaf_arg, strict=True) if owner == a]

  def owners(self, x: Any) -> set[int]:
    """The arguments through which Variable ``x`` (an outer one) is reached."""
    return {self.node_arg[k] for k, node in enumerate(self.nodes)
            if any(v is x for v in flatten(node)[1])}

  def all_values(self, pure: tuple | list, fill: Any = None) -> list:
    """The state values of every graph object, from the per-argument values of ``pure``
    (``None`` entries: the argument is missing and ``fill``'s values are used)."""
    out, iters = [], [iter(p[1]) if p is not None else None for p in pure]
    for j, a in enumerate(self.leaf_arg):
      it = iters[a]
      out.append(next(it) if it is not None else (fill[j] if fill is not None else None))
    return out

  def rebuild(self, pure: tuple | list, fill: Any = None) -> tuple[tuple, list]:
    """``(arguments, rebuilt graph objects)`` from per-argument pure forms; arguments whose
    form is ``None`` take their values from ``fill`` and come back as ``None``."""
    nodes, _ = unflatten(self.graphdef, self.all_values(pure, fill))
    args, k = [], 0
    for a, (leaves, treedef, positions) in enumerate(self.per_arg):
      if pure[a] is None:
        args.append(None)
        k += len(positions)
        continue
      leaves = list(pure[a][0])
      for p in positions:
        leaves[p] = nodes[k]
        k += 1
      args.append(treedef.unflatten(leaves))
    return tuple(args), list(nodes)

  def write_back(self, written: tuple[int, ...], values: list) -> None:
    """New values into the caller's Variables (indices into the flattened state)."""
    for j, value in zip(written, values, strict=True):
      self.state[j].__dict__["_raw"] = value
