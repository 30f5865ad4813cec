"""``nnx.eval_shape``: run a function abstractly, graph objects in and out.

>>> from flaxen import nnx
>>> abstract = nnx.eval_shape(lambda: nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
>>> abstract.kernel.value
ShapeDtypeStruct(shape=(2, 3), dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from flaxen.errors.nnx_transforms import DuplicateVariableError
from flaxen.nnx.graph import flatten, unflatten
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.transforms import lift, tree_mode
from flaxen.nnx.variables import Variable

__all__ = ["eval_shape"]


def eval_shape(f: Callable, *args: Any, graph: bool | None = None,
               graph_updates: bool | None = None, **kwargs: Any) -> Any:
  """The output of ``f(*args, **kwargs)`` with ``jax.ShapeDtypeStruct`` for every array.

  Graph objects in the output are new objects whose Variables hold ShapeDtypeStructs; the
  arguments are not modified. Without graph updates (``graph_updates=False``, or tree mode
  ``graph=False``) an input Variable may not be returned, nor passed twice as an argument
  of its own (tree mode: nowhere twice).
  """
  tree_mode.check_not_bound_method(f, "nnx.eval_shape")
  graph = resolve_graph(graph)
  functional = not (graph and resolve_graph_updates(graph_updates))
  leaves, treedef, positions = lift.find_nodes((args, kwargs))
  if functional:
    return _functional(f, args, kwargs, leaves, treedef, positions, tree=not graph)
  graphdef, state_leaves, _, _ = flatten(tuple(leaves[p] for p in positions))

  captured = {}  # static facts of the output, recorded during the single trace

  def pure(values: list) -> tuple:
    (call_args, call_kwargs), _, _ = lift.rebuild(graphdef, values, leaves, treedef, positions)
    out_leaves, out_treedef, out_positions, out_nodes = lift.take_nodes(
      f(*call_args, **call_kwargs))
    out_graphdef, out_values, _, _ = flatten(tuple(out_nodes))
    captured.update(graphdef=out_graphdef, treedef=out_treedef, positions=out_positions)
    return out_leaves, [lift.raw(x) for x in out_values]

  out_leaves, out_values = jax.eval_shape(pure, [lift.raw(x) for x in state_leaves])
  nodes, _ = unflatten(captured["graphdef"], out_values)
  for i, node in zip(captured["positions"], nodes, strict=True):
    out_leaves[i] = node
  return captured["treedef"].unflatten(out_leaves)


def _functional(f: Callable, args: tuple, kwargs: dict, leaves: list, treedef: Any,
                positions: tuple, tree: bool) -> Any:
  if tree:
    tree_mode.check_unique((args, kwargs), "nnx.eval_shape")
  else:  # graph mode: Variables passed as arguments of their own are not shared references
    seen: dict[int, int] = {}
    for p in positions:
      if isinstance(leaves[p], Variable) and seen.setdefault(id(leaves[p]), p) != p:
        raise DuplicateVariableError("nnx.eval_shape", leaves[p], (seen[id(leaves[p])],),
                                     (p,))
  graphdef, state_leaves, _, _ = flatten(tuple(leaves[p] for p in positions))
  captured = {}

  def pure(values: list) -> Any:
    (call_args, call_kwargs), inner, _ = lift.rebuild(graphdef, values, leaves, treedef,
                                                      positions)
    snapshot = tree_mode.Snapshot(inner)
    out, captured["nodes"] = tree_mode.pack_output(
      f(*call_args, **call_kwargs), snapshot.variable_ids(), "nnx.eval_shape", tree)
    return out

  out = jax.eval_shape(pure, [lift.raw(x) for x in state_leaves])
  nodes = captured["nodes"]
  return out if nodes is None else nodes.unflatten(out)
