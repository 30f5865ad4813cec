"""``nnx.checkify``: ``jax.experimental.checkify`` for functions of graph objects.

The function's state changes are applied to the caller's objects as by the other
transforms (structure changes too in graph mode with graph updates; only Variable values
otherwise), and its output may hold graph objects.

>>> import jax.numpy as jnp
>>> from jax.experimental import checkify
>>> from flaxen import nnx
>>> m = nnx.Dict(w=nnx.Param(jnp.array(jnp.inf)))
>>> err, out = nnx.checkify(lambda m: jnp.sin(m.w[...]), errors=checkify.float_checks)(m)
>>> err.get() is not None
True
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from jax.experimental import checkify as jax_checkify

from flaxen.nnx.graph import flatten
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.transforms import lift, tree_mode
from flaxen.nnx.transforms.autodiff_tree import _Traced
from flaxen.nnx.variables import Variable

__all__ = ["checkify"]


def checkify(f: Callable, errors: Any = jax_checkify.user_checks, graph: bool | None = None,
             graph_updates: bool | None = None) -> Callable:
  """Like ``jax.experimental.checkify.checkify``: the returned function gives
  ``(error, output)``; graph objects among the arguments are updated.

  Args:
    f: the function.
    errors: the set of checks (``checkify.user_checks``, ``float_checks``...).
    graph, graph_updates: the mode (defaults: ``nnx.set_graph_mode`` /
      ``nnx.set_graph_updates``).
  """
  tree_mode.check_not_bound_method(f, "nnx.checkify")
  graph = resolve_graph(graph)
  functional = not (graph and resolve_graph_updates(graph_updates))

  @functools.wraps(f)
  def wrapper(*args: Any, **kwargs: Any) -> tuple:
    if functional:
      return _functional(f, errors, (args, kwargs), tree=not graph)
    return _graph(f, errors, (args, kwargs))

  return wrapper


def _functional(f: Callable, errors: Any, args_kwargs: tuple, tree: bool) -> tuple:
  pure = tree_mode.PureArgs((args_kwargs,), tree, "nnx.checkify")
  traced = _Traced(lambda ak: f(*ak[0], **ak[1]), pure, False, tree, "nnx.checkify")
  err, (out, (_, new_values)) = jax_checkify.checkify(
    lambda form: traced.run([form], pack_out=True), errors=errors)(pure.pure[0])
  traced.finish(None, new_values)
  return err, (out if traced.out_nodes is None else traced.out_nodes.unflatten(out))


def _graph(f: Callable, errors: Any, args_kwargs: tuple) -> tuple:
  """Graph mode with graph updates: the ``lift`` core, structure changes replayed."""
  leaves, treedef, positions = lift.find_nodes(args_kwargs)
  nodes = [leaves[p] for p in positions]
  graphdef, state, _, _ = flatten(tuple(nodes))
  captured = {}

  def pure(values: list) -> tuple:
    (args, kwargs), inner, refs = lift.rebuild(graphdef, values, leaves, treedef, positions)
    out_leaves, out_treedef, out_positions, out_nodes = lift.take_nodes(f(*args, **kwargs))
    new_values, update = lift.capture(inner, refs, graphdef, out_nodes)
    captured.update(update=update, treedef=out_treedef, positions=out_positions)
    return out_leaves, new_values

  err, (out_leaves, new_values) = jax_checkify.checkify(pure, errors=errors)(
    [lift.raw(x) for x in state])
  update = captured["update"]
  if update.same and all(isinstance(x, Variable) for x in state):
    lift.write_values(state, new_values)
  else:
    for i, node in zip(captured["positions"], lift.apply(update, new_values, nodes),
                       strict=True):
      out_leaves[i] = node
  return err, captured["treedef"].unflatten(out_leaves)
