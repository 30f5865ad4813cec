"""``nnx.grad`` and ``nnx.value_and_grad``: differentiation w.r.t. a graph's Variables.

For an argument that is (or contains) graph objects, the gradient is taken w.r.t. the
Variables that match its filter (``nnx.Param`` by default, or the filter of an
``nnx.DiffState(argnum, filter)``) and returned as a ``State`` in place of each object.
Other state changes the function makes (batch statistics, Rng counters, new attributes)
are applied to the caller's objects, as with ``nnx.jit``. Non-graph arguments are
differentiated as ``jax.grad`` would.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> class Scale(nnx.Module):
...   def __init__(self):
...     self.w = nnx.Param(jnp.array(3.0))
...     self.calls = nnx.BatchStat(jnp.array(0))
...   def __call__(self, x):
...     self.calls.value += 1
...     return self.w * x
>>> m = Scale()
>>> grads = nnx.grad(lambda m, x: m(x) ** 2)(m, 2.0)
>>> grads.w.value, m.calls.value
(Array(24., dtype=float32, weak_type=True), Array(1, dtype=int32, weak_type=True))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax

from flaxen.nnx import filterlib
from flaxen.nnx.graph import flatten, unflatten
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.state import State
from flaxen.nnx.transforms import autodiff_tree, lift, tree_mode
from flaxen.nnx.variables import Param, Variable

__all__ = ["DiffState", "grad", "value_and_grad", "vjp", "jvp"]


class DiffState:
  """Differentiate argument ``argnum`` w.r.t. the Variables matching ``filter``."""

  def __init__(self, argnum: int, filter: Any):
    self.argnum = argnum
    self.filter = filter

  def map_prefix(self, path: tuple, variable: Any) -> bool:
    """Whether the Variable at ``path`` (within the argument) is differentiated."""
    return filterlib.to_predicate(self.filter)(path, variable)

  def __repr__(self) -> str:
    return f"DiffState({self.argnum}, {self.filter!r})"


def _specs(argnums: Any) -> tuple[list[tuple[int, Any]], bool]:
  single = isinstance(argnums, int | DiffState)
  items = [argnums] if single else list(argnums)
  specs = [(a.argnum, a.filter) if isinstance(a, DiffState) else (a, Param) for a in items]
  return specs, single


class _DiffCall:
  """One call of a differentiated function over graph arguments.

  ``diff_inputs`` holds, per differentiated argument, the argument with each graph node
  replaced by a State of its selected Variables; ``pure`` maps them to ``(value, (aux,
  new_values, update))`` and ``finish`` applies the state changes to the caller's objects.
  """

  def __init__(self, f: Callable, args: Sequence[Any], specs: list[tuple[int, Any]],
               has_aux: bool):
    self.f, self.specs, self.has_aux = f, specs, has_aux
    self.per_arg = [lift.find_nodes(a) for a in args]
    self.nodes, self.owners = [], []  # owners[k] = (argnum, position among its leaves)
    for a, (leaves, _, positions) in enumerate(self.per_arg):
      for p in positions:
        self.nodes.append(leaves[p])
        self.owners.append((a, p))
    self.graphdef, self.leaves, self.paths, refs = flatten(tuple(self.nodes))
    self.num_refs = len(refs)
    self.node_leaves: list[list[int]] = [[] for _ in self.nodes]
    for j, path in enumerate(self.paths):
      self.node_leaves[path[0]].append(j)
    diff_inputs, self.diff_leaves = [], set()
    for a, filt in specs:
      predicate = filterlib.to_predicate(filt)
      arg_leaves, treedef, _ = self.per_arg[a]
      arg_leaves = list(arg_leaves)
      for k, (owner, p) in enumerate(self.owners):
        if owner == a:
          node = self.nodes[k]
          if isinstance(node, Variable) and self.node_leaves[k]:
            # A Variable reached as a node of its own (in a dict, a State...) is
            # differentiated whole unless a DiffState chose a filter; its gradient is a
            # Variable, not a State.
            j = self.node_leaves[k][0]
            if filt is Param or predicate((), node):
              self.diff_leaves.add(j)
              arg_leaves[p] = _detached(node)
            else:
              arg_leaves[p] = State({})
            continue
          chosen = [j for j in self.node_leaves[k]
                    if predicate(self.paths[j][1:], self.leaves[j])]
          self.diff_leaves.update(chosen)
          arg_leaves[p] = State.from_flat_path(
            [(self.paths[j][1:], _detached(self.leaves[j])) for j in chosen])
      diff_inputs.append(treedef.unflatten(arg_leaves))
    self.diff_inputs = tuple(diff_inputs)

  def base_values(self) -> list:
    """The values the graph is rebuilt from before the differentiated ones go in."""
    return list(self.leaves)

  def pure(self, diff_inputs: tuple) -> tuple:
    values = self.base_values()
    new_args = [list(arg_leaves) for arg_leaves, _, _ in self.per_arg]
    for (a, _), tree in zip(self.specs, diff_inputs, strict=True):
      new_args[a] = self.per_arg[a][1].flatten_up_to(tree)
    for k, (a, p) in enumerate(self.owners):
      if isinstance(new_args[a][p], Variable) and self.node_leaves[k]:
        values[self.node_leaves[k][0]] = new_args[a][p]
      elif isinstance(new_args[a][p], State):
        flat = dict(new_args[a][p].flat_state())
        for j in self.node_leaves[k]:
          if j in self.diff_leaves:
            values[j] = flat[self.paths[j][1:]]
    root, refs = unflatten(self.graphdef, values)
    for k, (a, p) in enumerate(self.owners):
      new_args[a][p] = root[k]
    out = self.f(*[self.per_arg[a][1].unflatten(x) for a, x in enumerate(new_args)])
    value, aux = out if self.has_aux else (out, None)
    value, out_nodes = self.take_out_nodes(value)
    new_values, update = lift.capture(list(root), refs, self.graphdef, out_nodes)
    return value, (aux, new_values, update)

  def take_out_nodes(self, value: Any) -> tuple[Any, list]:
    """Graph objects of the output that leave as part of the graph update (none here: a
    differentiated function returns arrays)."""
    return value, []

  def finish(self, new_values: list, update: lift.GraphUpdate) -> list:
    """Applies the state changes to the caller's objects; returns the output's nodes."""
    if update.same and all(isinstance(x, Variable) for x in self.leaves):
      lift.write_values(self.leaves, new_values)
      return []
    return lift.apply(update, new_values, self.nodes)


def _detached(leaf: Any) -> Any:
  return leaf.copy() if isinstance(leaf, Variable) else leaf


def _modes(argnums: Any, graph: bool | None, graph_updates: bool | None,
           name: str) -> tuple[bool, bool]:
  """``(graph, functional)``, with the argnums checked for the mode."""
  graph = resolve_graph(graph)
  functional = not (graph and resolve_graph_updates(graph_updates))
  tree_mode.check_no_graph_prefix(argnums, name, "argnums")
  if functional:
    tree_mode.check_no_prefix_filter(argnums, DiffState, name, "argnums")
  return graph, functional


def value_and_grad(f: Callable | None = None,
                   argnums: int | DiffState | Sequence[int | DiffState] = 0,
                   has_aux: bool = False, *, holomorphic: bool = False,
                   allow_int: bool = False, reduce_axes: Sequence[Any] = (),
                   graph: bool | None = None, graph_updates: bool | None = None) -> Callable:
  """Like ``jax.value_and_grad``; graph arguments get their gradients as ``State``s.

  In graph mode with graph updates, a graph argument is differentiated w.r.t. its
  ``nnx.Param``s (or the filter of a ``DiffState``) and its gradient is a ``State``; state
  changes of any kind are applied to the caller's objects. Without graph updates (or in
  tree mode) arguments are differentiated whole, as by JAX: a Module's gradient is a Module
  of the same type; only new Variable values come back (see ``autodiff_tree``).

  Returns:
    A function returning ``(value, grads)`` (``((value, aux), grads)`` with ``has_aux``);
    ``grads`` is a tuple when ``argnums`` is a sequence. Without ``f``, a decorator.
  """
  if f is None:
    return functools.partial(value_and_grad, argnums=argnums, has_aux=has_aux,
                             holomorphic=holomorphic, allow_int=allow_int, graph=graph,
                             graph_updates=graph_updates)
  tree_mode.check_not_bound_method(f, "nnx.grad")
  graph, functional = _modes(argnums, graph, graph_updates, "nnx.value_and_grad")
  if functional:
    return autodiff_tree.value_and_grad(f, argnums, has_aux, holomorphic, allow_int,
                                        tree=not graph)
  specs, single = _specs(argnums)

  @functools.wraps(f)
  def wrapper(*args: Any) -> Any:
    call = _DiffCall(f, args, specs, has_aux)
    grad_fn = jax.value_and_grad(call.pure, has_aux=True, holomorphic=holomorphic,
                                 allow_int=allow_int)
    (value, (aux, new_values, update)), grads = grad_fn(call.diff_inputs)
    call.finish(new_values, update)
    grads = grads[0] if single else grads
    return ((value, aux) if has_aux else value), grads

  return wrapper


def grad(f: Callable | None = None, argnums: int | DiffState | Sequence[int | DiffState] = 0,
         has_aux: bool = False, *, holomorphic: bool = False, allow_int: bool = False,
         reduce_axes: Sequence[Any] = (), graph: bool | None = None,
         graph_updates: bool | None = None) -> Callable:
  """Like ``jax.grad``; graph arguments get their gradients as ``State``s (graph mode with
  graph updates) or as objects of their own type (otherwise; see ``value_and_grad``).

  Returns:
    A function returning ``grads`` (``(grads, aux)`` with ``has_aux``). Without ``f``, a
    decorator.
  """
  if f is None:
    return functools.partial(grad, argnums=argnums, has_aux=has_aux, holomorphic=holomorphic,
                             allow_int=allow_int, graph=graph, graph_updates=graph_updates)
  vg = value_and_grad(f, argnums, has_aux, holomorphic=holomorphic, allow_int=allow_int,
                      graph=graph, graph_updates=graph_updates)

  @functools.wraps(f)
  def wrapper(*args: Any) -> Any:
    (value, grads) = vg(*args)
    return (grads, value[1]) if has_aux else grads

  return wrapper


def _all_params(n: int) -> list[tuple[int, Any]]:
  return [(a, Param) for a in range(n)]


def vjp(f: Callable | None = None, *primals: Any, has_aux: bool = False,
        reduce_axes: Sequence[Any] = (), graph: bool | None = None,
        graph_updates: bool | None = None) -> Any:
  """Like ``jax.vjp``; graph objects among ``primals`` are differentiated w.r.t. their
  ``nnx.Param``s, and their cotangents are ``State``s (graph mode with graph updates);
  otherwise they are differentiated whole and their cotangents have their own type.
  Without ``f`` (or without primals), a decorator: ``nnx.vjp(graph=False)(f)(*primals)``.

  Returns:
    ``(out, vjp_fn)`` (``(out, vjp_fn, aux)`` with ``has_aux``); ``vjp_fn(cotangent)``
    returns one cotangent per primal.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> m = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  >>> y, pullback = nnx.vjp(lambda m, x: m(x), m, jnp.ones((1, 2)))
  >>> g_model, g_x = pullback(jnp.ones_like(y))
  >>> g_model.bias.value
  Array([1.], dtype=float32)
  """
  if f is None or not primals:
    options = dict(has_aux=has_aux, graph=graph, graph_updates=graph_updates)
    if f is None:
      return lambda fn: functools.wraps(fn)(functools.partial(vjp, fn, **options))
    return functools.wraps(f)(functools.partial(vjp, f, **options))
  graph, functional = _modes(0, graph, graph_updates, "nnx.vjp")
  if functional:
    return autodiff_tree.vjp(f, primals, has_aux, tree=not graph)
  call = _DiffCall(f, primals, _all_params(len(primals)), has_aux)
  out, vjp_fn, (aux, new_values, update) = jax.vjp(call.pure, call.diff_inputs, has_aux=True)
  call.finish(new_values, update)

  def pullback(cotangent: Any) -> tuple:
    return vjp_fn(cotangent)[0]

  return (out, pullback, aux) if has_aux else (out, pullback)


def jvp(f: Callable | None = None, primals: Sequence[Any] | None = None,
        tangents: Sequence[Any] | None = None, has_aux: bool = False, *,
        graph: bool | None = None, graph_updates: bool | None = None) -> Any:
  """Like ``jax.jvp``; the tangent of a graph object is a ``State`` of its ``nnx.Param``s
  (e.g. ``jax.tree.map(jnp.ones_like, nnx.state(model, nnx.Param))``) in graph mode with
  graph updates, else an object of the same structure (``jax.tree.map(jnp.ones_like,
  model)``). Without ``primals``, a decorator: ``nnx.jvp(graph=False)(f)(primals,
  tangents)``.

  Returns:
    ``(out, tangent_out)`` (``(out, tangent_out, aux)`` with ``has_aux``).
  """
  if f is None or primals is None:
    options = dict(has_aux=has_aux, graph=graph, graph_updates=graph_updates)
    if f is None:
      return lambda fn: functools.wraps(fn)(functools.partial(jvp, fn, **options))
    return functools.wraps(f)(functools.partial(jvp, f, **options))
  graph, functional = _modes(0, graph, graph_updates, "nnx.jvp")
  if functional:
    return autodiff_tree.jvp(f, primals, tangents, has_aux, tree=not graph)
  call = _DiffCall(f, primals, _all_params(len(primals)), has_aux)
  out, tangent_out, (aux, new_values, update) = jax.jvp(
    call.pure, (call.diff_inputs,), (tuple(tangents),), has_aux=True)
  call.finish(new_values, update)
  return (out, tangent_out, aux) if has_aux else (out, tangent_out)
