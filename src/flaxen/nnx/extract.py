"""``nnx.to_tree`` / ``nnx.from_tree``: pytrees holding graph objects, as pure pytrees.

``to_tree`` replaces each graph object (Module, Variable, Rngs...) in a pytree by a
``NodeStates`` (its GraphDef as static data, its States as children), so the result can
cross ``jax.jit`` or any JAX transform; ``from_tree`` rebuilds the objects. Objects shared
between positions are split once per position (each position gets its own copy back).

>>> import jax
>>> from flaxen import nnx
>>> tree = (nnx.Linear(2, 3, rngs=nnx.Rngs(0)), 1.0)
>>> pure = nnx.to_tree(tree)
>>> type(pure[0]).__name__, len(jax.tree.leaves(pure))
('NodeStates', 3)
>>> type(nnx.from_tree(pure)[0]).__name__
'Linear'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from flaxen import struct
from flaxen.nnx.graph import GraphDef
from flaxen.nnx.graphlib import merge, split
from flaxen.nnx.object import is_graph_node

__all__ = ["NodeStates", "to_tree", "from_tree"]


class NodeStates(struct.PyTreeNode):
  """A graph object as a pytree: ``states`` (children), free ``metadata`` (static) and
  ``graphdef`` (static; ``None`` for ``from_states`` / ``from_prefixes``).

  Args:
    states: the States (or prefixes) it carries.
    metadata: anything static the maker wants kept with them.
  """

  states: tuple
  metadata: Any = struct.field(pytree_node=False)
  _graphdef: GraphDef | None = struct.field(pytree_node=False, default=None)

  @property
  def graphdef(self) -> GraphDef:
    if self._graphdef is None:
      raise ValueError("This NodeStates has no GraphDef (made by from_states/from_prefixes)")
    return self._graphdef

  @property
  def state(self) -> Any:
    if len(self.states) != 1:
      raise ValueError(f"NodeStates holds {len(self.states)} States; use .states")
    return self.states[0]

  @classmethod
  def from_split(cls, graphdef: GraphDef, state: Any, /, *states: Any,
                 metadata: Any = None) -> NodeStates:
    return cls((state, *states), metadata, graphdef)

  @classmethod
  def from_states(cls, state: Any, *states: Any) -> NodeStates:
    return cls((state, *states), None)

  @classmethod
  def from_prefixes(cls, prefixes: Any, /, *, metadata: Any = None) -> NodeStates:
    return cls(tuple(prefixes), metadata)


def to_tree(tree: Any, /, *, prefix: Any = None, split_fn: Callable | None = None,
            map_non_graph_nodes: bool = False, ctxtag: Any = None,
            check_aliasing: bool = True) -> Any:
  """``tree`` with each graph object replaced by a ``NodeStates`` (see the module doc);
  ``split_fn(path, prefix, node)`` may return ``(graphdef, *states)`` instead of
  ``nnx.split(node)``."""
  del ctxtag, check_aliasing, map_non_graph_nodes

  def convert(path: Any, node: Any) -> Any:
    if not is_graph_node(node):
      return node
    parts = split_fn(path, prefix, node) if split_fn is not None else split(node)
    return NodeStates.from_split(*parts)

  return jax.tree_util.tree_map_with_path(convert, tree, is_leaf=is_graph_node)


def from_tree(tree: Any, /, *, prefix: Any = None, merge_fn: Callable | None = None,
              is_node_leaf: Callable | None = None, is_leaf: Callable | None = None,
              map_non_graph_nodes: bool = False, is_inner: bool | None = None,
              ctxtag: Any = None) -> Any:
  """Inverse of ``to_tree``: each ``NodeStates`` merged back into a graph object
  (``merge_fn(path, prefix, node_states)`` instead of ``nnx.merge`` if given)."""
  del is_node_leaf, is_leaf, map_non_graph_nodes, is_inner, ctxtag

  def convert(path: Any, node: Any) -> Any:
    if not isinstance(node, NodeStates):
      return node
    if merge_fn is not None:
      return merge_fn(path, prefix, node)
    return merge(node.graphdef, *node.states)

  return jax.tree_util.tree_map_with_path(
    convert, tree, is_leaf=lambda x: isinstance(x, NodeStates))
