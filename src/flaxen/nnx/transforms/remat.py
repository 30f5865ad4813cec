"""``nnx.remat``: ``jax.checkpoint`` for functions that take and mutate graph objects.

The graph objects' state values enter the checkpointed function as arguments, so under
differentiation the function's intermediates are recomputed in the backward pass instead
of stored; state changes come out as outputs and are written back as with ``nnx.jit``.

>>> import jax, jax.numpy as jnp
>>> from flaxen import nnx
>>> m = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
>>> loss = lambda m: nnx.remat(lambda m, x: jnp.sin(m(x)).sum())(m, jnp.ones((1, 2)))
>>> nnx.grad(loss)(m).kernel.value.shape
(2, 2)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax

from flaxen.nnx.graph import flatten
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.transforms import lift
from flaxen.nnx.transforms.tree_mode import check_not_bound_method, check_unique
from flaxen.nnx.variables import Variable

__all__ = ["remat"]


def remat(f: Callable | None = None, *, prevent_cse: bool = True,
          static_argnums: int | Sequence[int] = (), policy: Callable | None = None,
          graph: bool | None = None, graph_updates: bool | None = None) -> Any:
  """Rematerializes ``f`` like ``jax.checkpoint``; graph objects among its arguments are
  updated.

  Args:
    f: the function; omitted, ``remat`` returns a decorator.
    prevent_cse, policy: as in ``jax.checkpoint``.
    static_argnums: positions of arguments passed as they are (Python values).
    graph: graph mode, or, if False, tree mode (a Variable may appear only once among the
      arguments). ``None``: ``nnx.set_graph_mode``'s value.
    graph_updates: whether structural changes made by ``f`` reach the arguments (graph
      mode); without, only Variable values flow back. ``None``: ``nnx.set_graph_updates``.

  Returns:
    The rematerialized function.
  """
  if f is None:
    return functools.partial(remat, prevent_cse=prevent_cse, static_argnums=static_argnums,
                             policy=policy, graph=graph, graph_updates=graph_updates)
  check_not_bound_method(f, "nnx.remat")
  static = {static_argnums} if isinstance(static_argnums, int) else set(static_argnums)
  graph = resolve_graph(graph)
  updates = graph and resolve_graph_updates(graph_updates)

  @functools.wraps(f)
  def wrapper(*args: Any) -> Any:
    static_args = {i: a for i, a in enumerate(args) if i in static}
    dynamic = tuple(None if i in static else a for i, a in enumerate(args))
    if not graph:
      check_unique(dynamic, "nnx.remat")
    g = lift.GraphArgs(dynamic)
    facts = []

    @functools.partial(jax.checkpoint, prevent_cse=prevent_cse, policy=policy)
    def pure(leaves: list, values: list) -> tuple:
      inner_args, inner, refs = g.rebuild(leaves, values)
      inner_args = tuple(static_args.get(i, a) for i, a in enumerate(inner_args))
      inner_leaves = None if updates else flatten(tuple(inner))[1]
      out_leaves, treedef, positions, out_nodes = lift.take_nodes(f(*inner_args))
      if updates or out_nodes:
        new_values, update = lift.capture(inner, refs, g.graphdef, out_nodes)
      else:  # only the Variables' new values count, and only those the function replaced
        # (an unchanged Variable keeps its value object, so an enclosing transform sees
        # no update)
        new_values = [lift.raw(x) for x in inner_leaves]
        changed = tuple(j for j, v in enumerate(new_values)
                        if v is not values[j] and isinstance(inner_leaves[j], Variable))
        facts.append((None, treedef, positions, changed))
        return out_leaves, [new_values[j] for j in changed]
      facts.append((update, treedef, positions, None))
      return out_leaves, new_values

    out_leaves, new_values = pure(g.leaves, g.values)
    update, treedef, positions, changed = facts[-1]
    if changed is not None:
      lift.write_values([g.variables[j] for j in changed], new_values)
      return treedef.unflatten(out_leaves)
    for p, node in zip(positions, g.write_back(update, new_values), strict=True):
      out_leaves[p] = node
    return treedef.unflatten(out_leaves)

  return wrapper
