"""What every stateful transform shares: carrying graph objects across a pure function.

Outside, the graph objects among the arguments are flattened once into a GraphDef and their
Variables' values. Inside the transformed (pure) function the graph is rebuilt from those
values, the user function runs and may mutate it, and ``capture`` flattens it again. If the
structure came back unchanged (the common case), the caller writes the new values into its
own Variables; otherwise ``apply`` replays the new structure onto the caller's objects in
place, creating what is new and reusing what is not, so identity and sharing are kept.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> from flaxen.nnx.transforms import lift
>>> lift.find_nodes(({"m": nnx.Param(1.0)}, jnp.ones(2)))[2]
(0,)
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import jax
from jax._src.array import ArrayImpl

from flaxen.nnx.graph import GraphDef, flatten, unflatten
from flaxen.nnx.object import Object, is_graph_node
from flaxen.nnx.transforms.leaks import check_current_trace
from flaxen.nnx.variables import Variable

__all__ = ["GraphUpdate", "find_nodes", "find_arg_nodes", "rebuild", "take_nodes", "capture",
           "apply", "write_values", "GraphArgs"]


class GraphUpdate:
  """What a pure function did to the graph: a static pytree, so it can leave a trace."""

  __slots__ = ("same", "graphdef", "out_to_in", "num_inputs")

  def __init__(self, same: bool, graphdef: GraphDef, out_to_in: tuple, num_inputs: int):
    self.same = same
    self.graphdef = graphdef
    self.out_to_in = out_to_in
    self.num_inputs = num_inputs


jax.tree_util.register_static(GraphUpdate)


def find_nodes(tree: Any) -> tuple[list, Any, tuple[int, ...]]:
  """``(leaves, treedef, positions)``: ``tree`` flattened with graph nodes as leaves, and
  the positions of those nodes among the leaves."""
  leaves, treedef = jax.tree_util.tree_flatten(tree, is_leaf=is_graph_node)
  positions = tuple(i for i, x in enumerate(leaves) if is_graph_node(x))
  return leaves, treedef, positions


# The concrete class of jax arrays, for exact type checks on the hot path. Imported rather
# than read off an array, which would start the backend at import (too early for
# jax.distributed.initialize).
ARRAY_IMPL = ArrayImpl
NODE_TYPES = (Object, Variable)


@functools.lru_cache(maxsize=32)
def _flat_args_treedef(n: int) -> Any:
  return jax.tree_util.tree_structure((tuple(range(n)), {}))


def find_arg_nodes(args: tuple, kwargs: dict) -> tuple[list, Any, tuple[int, ...]]:
  """``find_nodes((args, kwargs))``, with a shortcut for the common call where every
  argument is a graph node or an array (no pytree walk with a Python callback)."""
  if not kwargs:
    positions = []
    for i, a in enumerate(args):
      if isinstance(a, NODE_TYPES):
        positions.append(i)
      elif type(a) is not ARRAY_IMPL:
        break
    else:
      return list(args), _flat_args_treedef(len(args)), tuple(positions)
  return find_nodes((args, kwargs))


def rebuild(graphdef: GraphDef, values: list, leaves: list, treedef: Any,
            positions: tuple[int, ...]) -> tuple[Any, list, list]:
  """Inside a pure function: the graph rebuilt from ``values`` and put back at its
  positions in the argument tree. Returns ``(tree, inner_nodes, refs)``."""
  root, refs = unflatten(graphdef, values)
  leaves = list(leaves)
  for k, p in enumerate(positions):
    leaves[p] = root[k]
  return treedef.unflatten(leaves), list(root), refs


def take_nodes(tree: Any) -> tuple[list, Any, tuple[int, ...], list]:
  """A function's output with its graph nodes taken out (``None`` in their place):
  ``(leaves, treedef, positions, nodes)``."""
  leaves, treedef, positions = find_nodes(tree)
  nodes = [leaves[i] for i in positions]
  for i in positions:
    leaves[i] = None
  return leaves, treedef, positions, nodes


def raw(leaf: Any) -> Any:
  return leaf._raw if isinstance(leaf, Variable) else leaf


_TRANSFORM_NAMES = {
  "jit": "nnx.jit", "vmap": "nnx.vmap", "remat": "nnx.remat", "scan": "nnx.scan",
  "autodiff": "nnx.grad", "control_flow": "nnx.cond / switch / while_loop / fori_loop",
  "checkify": "nnx.checkify",
}


def capture(inner_inputs: list, refs_in: list, graphdef_in: GraphDef,
            out_nodes: list) -> tuple[list, GraphUpdate]:
  """Flattens the graph after the user function ran: ``(values, update)``.

  Raises:
    TracerLeakError: the function left a tracer of this trace in a static attribute.
  """
  graphdef_out, leaves, _, refs_out = flatten((*inner_inputs, *out_nodes))
  # The transform's module (jit, vmap, scan...) names it in the error.
  caller = sys._getframe(1).f_globals.get("__name__", "").rsplit(".", 1)[-1]
  check_current_trace(graphdef_out, _TRANSFORM_NAMES.get(caller, "nnx transform"))
  position = {id(r): i for i, r in enumerate(refs_in)}
  out_to_in = tuple(position.get(id(r), -1) for r in refs_out)
  same = (not out_nodes and graphdef_out == graphdef_in
          and out_to_in == tuple(range(len(refs_in))))
  values = [raw(x) for x in leaves]
  return values, GraphUpdate(same, graphdef_out, out_to_in, len(inner_inputs))


def apply(update: GraphUpdate, values: list, outer_nodes: list) -> list:
  """Replays a changed structure onto the caller's objects; returns the output nodes."""
  _, _, _, refs = flatten(tuple(outer_nodes))
  existing = {o: refs[i] for o, i in enumerate(update.out_to_in) if i >= 0}
  root, _ = unflatten(update.graphdef, values, existing)
  return list(root[update.num_inputs:])


def write_values(variables: list, values: list) -> None:
  """The fast path: new values into the same Variables, one dict write each."""
  for var, value in zip(variables, values, strict=True):
    var.__dict__["_raw"] = value


class GraphArgs:
  """A pytree of arguments taken apart for a JAX transform that is not ``jax.jit``.

  ``leaves`` are its leaves with ``None`` where the graph nodes were (what JAX transforms
  see), ``values`` the raw values of the nodes' state, ``variables[j]``/``paths[j]`` the
  Variable behind ``values[j]`` and its path (``paths[j][0]`` is the node's index).
  """

  def __init__(self, tree: Any):
    leaves, self.treedef, self.positions = find_nodes(tree)
    self.nodes = [leaves[p] for p in self.positions]
    for p in self.positions:
      leaves[p] = None
    self.leaves = leaves
    self.graphdef, self.variables, self.paths, _ = flatten(tuple(self.nodes))
    self.values = [raw(x) for x in self.variables]

  def rebuild(self, leaves: list, values: list) -> tuple[Any, list, list]:
    """Inside the transform: ``(tree, inner_nodes, refs)``."""
    return rebuild(self.graphdef, values, leaves, self.treedef, self.positions)

  def write_back(self, update: GraphUpdate, values: list) -> list:
    """Applies the transform's state changes to the caller's nodes; returns output nodes."""
    if update.same and all(isinstance(x, Variable) for x in self.variables):
      write_values(self.variables, values)
      return []
    return apply(update, values, self.nodes)
