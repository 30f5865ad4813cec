"""``nnx.custom_vjp``: a custom backward rule for a function of graph objects and arrays.

Built on ``jax.custom_vjp`` and the lifting of ``autodiff._DiffCall``: each graph object among
the arguments enters the JAX function as a ``State`` of its differentiated Variables
(``nnx.Param`` unless a ``DiffState(argnum, filter)`` in ``nondiff_argnums`` says otherwise),
the rest of its state as extra inputs whose cotangents are zero. The function may change the
objects' state; the new values leave as outputs and are written back, so ``bwd`` receives
``(residuals, (input_updates_g, out_g))``: ``input_updates_g`` holds, per differentiable
argument, the cotangents of those new values (a ``State`` where each object was, ``None``
where an array was), which is also the shape its own cotangents must have.

>>> import jax, jax.numpy as jnp
>>> from flaxen import nnx
>>> class Scale(nnx.Module):
...   def __init__(self):
...     self.w = nnx.Param(jnp.array(3.0))
>>> @nnx.custom_vjp
... def f(m, x):
...   return m.w * x
>>> def f_fwd(m, x):
...   return f(m, x), (m.w.value, x)
>>> def f_bwd(res, g):
...   (m_updates_g, _), out_g = g
...   w, x = res
...   m_g = jax.tree.map(lambda v: v, m_updates_g)
...   m_g.w.value = jnp.clip(x * out_g, -1.0, 1.0)  # a clipped gradient for w
...   return m_g, w * out_g
>>> f.defvjp(f_fwd, f_bwd)
>>> grads = nnx.grad(f, argnums=(0, 1))(Scale(), 2.0)
>>> float(grads[0].w.value), float(grads[1])
(1.0, 3.0)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxen.errors.nnx import CustomVjpError, CustomVjpTangentError
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.state import State
from flaxen.nnx.transforms import custom_vjp_tree, lift, tree_mode
from flaxen.nnx.transforms.autodiff import DiffState, _DiffCall
from flaxen.nnx.variables import Param, Variable

__all__ = ["CustomVjp", "custom_vjp"]


def _is_value(x: Any) -> bool:
  return isinstance(x, jax.Array | np.ndarray | np.generic | float | int | complex | bool)


def _zeros(x: Any) -> Any:
  dtype = jnp.result_type(x)
  if jnp.issubdtype(dtype, jnp.inexact):
    return jnp.zeros(jnp.shape(x), dtype)
  return np.zeros(jnp.shape(x), jax.dtypes.float0)


def _with_value(leaf: Any, value: Any) -> Any:
  """``leaf`` (a Variable: its type and metadata; else nothing) holding ``value``."""
  if isinstance(leaf, Variable):
    out = leaf.copy()
    out.__dict__["_raw"] = value
    return out
  return value


def _describe(x: Any) -> str:
  if isinstance(x, State):
    return "a State with paths " + str(sorted("/".join(map(str, p)) for p, _ in x.flat_state()))
  return type(x).__name__


class _VjpCall(_DiffCall):
  """One call: the arguments taken apart for ``jax.custom_vjp``.

  Its positional arguments are the caller's, with each differentiable one replaced by
  ``diff_inputs`` (graph objects as States), plus one last: ``rest``, the values of the
  Variables that are not differentiated (and raw arrays of the graph).
  """

  def __init__(self, owner: CustomVjp, args: tuple):
    self.owner = owner
    self.static = owner.static_argnums
    for a in self.static:
      if a >= len(args):
        raise CustomVjpError(owner.name, f"nondiff_argnums names argument {a}, but the "
                             f"function got {len(args)}", "number the positional arguments")
      if lift.find_nodes(args[a])[2]:
        raise CustomVjpError(
          owner.name, f"argument {a} is in nondiff_argnums as an int but holds graph objects",
          f"pass nnx.DiffState({a}, nnx.Nothing) to differentiate none of its Variables, or "
          "DiffState with a filter to choose them")
    self.diff_argnums = [a for a in range(len(args)) if a not in self.static]
    specs = [(a, owner.filters.get(a, Param)) for a in self.diff_argnums]
    super().__init__(owner.fun, args, specs, has_aux=False)
    self.args = args
    self.rest_index = [j for j in range(len(self.leaves))
                       if j not in self.diff_leaves and _is_value(lift.raw(self.leaves[j]))]
    self.rest: list = [lift.raw(self.leaves[j]) for j in self.rest_index]
    self.update: lift.GraphUpdate | None = None

  def base_values(self) -> list:
    values = list(self.leaves)
    for j, v in zip(self.rest_index, self.rest, strict=True):
      values[j] = v
    return values

  def take_out_nodes(self, value: Any) -> tuple[Any, list]:
    """Graph objects in the output (of ``fun``, or the first half of ``fwd``'s) leave as
    part of the graph update, so an input object returned comes back as itself and its
    cotangent flows through its Variables' new values."""
    out, res = value if self.f is self.owner.fwd else (value, None)
    leaves, treedef, positions, nodes = lift.take_nodes(out)
    self.out_structure = (treedef, positions)
    return ((leaves, res) if self.f is self.owner.fwd else leaves), nodes

  def _traced(self, fn: Callable, pargs: tuple) -> tuple:
    """Runs ``fn`` on the rebuilt arguments: ``(fn's output, new state values)``."""
    *pargs, self.rest = pargs
    self.f = fn
    diff_inputs = tuple(pargs[a] for a in self.diff_argnums)
    out, (_, new_values, update) = self.pure(diff_inputs)
    self.update = update
    return out, new_values

  def run(self) -> Any:
    owner = self.owner
    pargs = list(self.args)
    for a, x in zip(self.diff_argnums, self.diff_inputs, strict=True):
      pargs[a] = x

    def primal(*pargs):
      return self._traced(owner.fun, pargs)

    def fwd(*pargs):
      (out, res), new_values = self._traced(owner.fwd, pargs)
      return (out, new_values), res

    def bwd(*args):
      *nondiff, res, (out_g, values_g) = args
      out_g = self.out_structure[0].unflatten(out_g)
      tangents = owner.bwd(*nondiff, res, (self._input_updates_g(values_g), out_g))
      return (*self._check(tangents), [None] * len(self.rest_index))

    f = jax.custom_vjp(primal, nondiff_argnums=self.static)
    f.defvjp(fwd, bwd)
    out, new_values = f(*pargs, self.rest)
    nodes = self.finish(new_values, self.update)
    treedef, positions = self.out_structure
    for p, node in zip(positions, nodes, strict=True):
      out[p] = node
    out = treedef.unflatten(out)
    return out

  def _chosen(self, k: int) -> list[int]:
    return [j for j in self.node_leaves[k] if j in self.diff_leaves]

  def _input_updates_g(self, values_g: list) -> tuple:
    """Per differentiable argument, the cotangents of the new values of every Variable of
    its graph objects (differentiated or not, as Flax gives them)."""
    update = self.update
    # The inputs' leaves come first in the traced function's state values as long as their
    # nodes kept their indices (output nodes, if any, are appended after them).
    n = self.num_refs
    same = update is not None and (update.same or (
      update.graphdef is not None and update.out_to_in[:n] == tuple(range(n))
      and len(values_g) >= len(self.leaves)))
    out = []
    for a in self.diff_argnums:
      leaves, treedef, _ = self.per_arg[a]
      leaves = [None] * len(leaves)
      for k, (owner, p) in enumerate(self.owners):
        if owner == a:
          leaves[p] = State.from_flat_path([
            (self.paths[j][1:], _with_value(
              self.leaves[j], values_g[j] if same else _zeros(lift.raw(self.leaves[j]))))
            for j in self.node_leaves[k] if isinstance(self.leaves[j], Variable)])
      out.append(treedef.unflatten(leaves))
    return tuple(out)

  def _check(self, tangents: Any) -> list:
    """The user's cotangents, checked against the arguments and put in their exact form."""
    name, n = self.owner.name, len(self.diff_argnums)
    if not isinstance(tangents, tuple | list) or len(tangents) != n:
      got = f"a {type(tangents).__name__}" + (
        f" of length {len(tangents)}" if isinstance(tangents, tuple | list) else "")
      raise CustomVjpTangentError(name, None, f"expected a tuple of {n} (one per "
                                  f"differentiable argument {self.diff_argnums}), got {got}")
    return [self._check_arg(a, t) for a, t in zip(self.diff_argnums, tangents, strict=True)]

  def _check_arg(self, a: int, t: Any) -> Any:
    name = self.owner.name
    if t is None:
      return None
    primal_leaves, treedef, positions = self.per_arg[a]
    try:
      leaves = treedef.flatten_up_to(t)
    except (ValueError, TypeError) as e:
      raise CustomVjpTangentError(name, a, f"expected the structure {treedef}, got "
                                  f"{_describe(t)} ({e})") from None
    nodes = {p: k for k, (owner, p) in enumerate(self.owners) if owner == a}
    out = []
    for p, (primal, g) in enumerate(zip(primal_leaves, leaves, strict=True)):
      if p not in nodes:
        if g is not None and jnp.shape(g) != jnp.shape(primal):
          raise CustomVjpTangentError(name, a, f"leaf {p} has shape {jnp.shape(g)}, the "
                                      f"argument's has shape {jnp.shape(primal)}")
        out.append(g)
        continue
      chosen = self._chosen(nodes[p])
      if g is None:
        out.append(State.from_flat_path([
          (self.paths[j][1:], _with_value(self.leaves[j], _zeros(lift.raw(self.leaves[j]))))
          for j in chosen]))
        continue
      if not isinstance(g, State):
        raise CustomVjpTangentError(name, a, f"expected a State in place of the "
                                    f"{type(primal).__name__}, got {type(g).__name__}")
      flat = dict(g.flat_state())
      expected = {self.paths[j][1:] for j in chosen}
      if not expected <= set(flat):  # extra entries (not differentiated) are dropped
        fmt = lambda ps: sorted("/".join(map(str, q)) for q in ps)  # noqa: E731
        raise CustomVjpTangentError(
          name, a, f"the State for the {type(primal).__name__} has the paths "
          f"{fmt(flat)}, expected {fmt(expected)} (missing {fmt(expected - set(flat))}, "
          f"unexpected {fmt(set(flat) - expected)})")
      items = []
      for j in chosen:
        path, primal_value = self.paths[j][1:], lift.raw(self.leaves[j])
        value = lift.raw(flat[path])
        if value is None:
          value = _zeros(primal_value)
        elif jnp.shape(value) != jnp.shape(primal_value):
          raise CustomVjpTangentError(
            name, a, f"the value at {'/'.join(map(str, path))!r} has shape "
            f"{jnp.shape(value)}, the Variable's has shape {jnp.shape(primal_value)}")
        elif jnp.issubdtype(jnp.result_type(primal_value), jnp.inexact):
          value = jnp.asarray(value, jnp.result_type(primal_value))
        items.append((path, _with_value(self.leaves[j], value)))
      out.append(State.from_flat_path(items))
    return treedef.unflatten(out)


class CustomVjp:
  """A function with a custom backward rule, made by ``nnx.custom_vjp``; set the rule with
  ``defvjp(fwd, bwd)``."""

  def __init__(self, fun: Callable, nondiff_argnums: Sequence[int | DiffState] = (),
               graph: bool = True, graph_updates: bool = True):
    tree_mode.check_not_bound_method(fun, "nnx.custom_vjp")
    functools.update_wrapper(self, fun)
    self.fun = fun
    self.name = getattr(fun, "__name__", repr(fun))
    self._functional = not (graph and graph_updates)
    self._tree = not graph
    if self._functional:
      tree_mode.check_no_prefix_filter(tuple(nondiff_argnums), DiffState, "nnx.custom_vjp",
                                       "nondiff_argnums")
    self.fwd: Callable | None = None
    self.bwd: Callable | None = None
    self.nondiff_argnums = tuple(nondiff_argnums)
    static, self.filters = [], {}
    for x in self.nondiff_argnums:
      index = x.argnum if isinstance(x, DiffState) else x
      if not isinstance(index, int) or index < 0:
        raise CustomVjpError(self.name, f"nondiff_argnums entry {x!r} is not a non-negative "
                             "int or a DiffState", "e.g. nondiff_argnums=(1,) or "
                             "(nnx.DiffState(0, nnx.PathContains('kernel')),)")
      if index in static or index in self.filters:
        raise CustomVjpError(self.name, f"argument {index} appears twice in nondiff_argnums",
                             "name each argument once")
      if isinstance(x, DiffState):
        self.filters[index] = x.filter
      else:
        static.append(index)
    self.static_argnums = tuple(sorted(static))

  def defvjp(self, fwd: Callable, bwd: Callable, symbolic_zeros: bool = False) -> None:
    """Sets the rule: ``fwd(*args) -> (out, residuals)`` and
    ``bwd(*nondiff_args, residuals, (input_updates_g, out_g)) -> cotangents``."""
    if symbolic_zeros:
      raise CustomVjpError(self.name, "symbolic_zeros=True is not supported",
                           "leave symbolic_zeros False")
    self.fwd, self.bwd = fwd, bwd

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    if self.fwd is None or self.bwd is None:
      raise CustomVjpError(self.name, "called before its rule was set",
                           "call `f.defvjp(fwd, bwd)` first")
    if kwargs:
      bound = inspect.signature(self.fun).bind(*args, **kwargs)
      if bound.kwargs:
        raise CustomVjpError(self.name, f"keyword-only arguments {sorted(bound.kwargs)}",
                             "pass every argument positionally")
      args = bound.args
    if self._functional:
      return custom_vjp_tree.call(self, args, self._tree)
    return _VjpCall(self, args).run()


def custom_vjp(fun: Callable | None = None, *,
               nondiff_argnums: Sequence[int | DiffState] = (), graph: bool | None = None,
               graph_updates: bool | None = None) -> Any:
  """Like ``jax.custom_vjp``, for functions whose arguments may hold graph objects.

  Args:
    fun: the function. Without it, a decorator (``@nnx.custom_vjp(nondiff_argnums=...)``).
    nondiff_argnums: ints name arguments that are not differentiated (as in
      ``jax.custom_vjp``: not arrays to trace, no graph objects; ``bwd`` receives them first
      and returns no cotangent for them). A ``DiffState(argnum, filter)`` chooses which
      Variables of the graph objects in that argument are differentiated (default
      ``nnx.Param``); the argument is still differentiated.

  Returns:
    A ``CustomVjp``: call ``defvjp(fwd, bwd)`` on it. ``fwd`` takes the arguments and returns
    ``(out, residuals)``; residuals may hold graph objects (the rebuilt ones, read-only in
    ``bwd``). ``bwd(*nondiff_args, residuals, (input_updates_g, out_g))`` returns one
    cotangent per differentiable argument: a ``State`` of the differentiated Variables in
    place of each graph object (the shape of its ``input_updates_g`` entry), arrays (or
    ``None``) elsewhere. State changes that ``fun`` (or ``fwd``) makes are applied to the
    caller's objects.
    graph, graph_updates: the mode (defaults: ``nnx.set_graph_mode`` /
      ``nnx.set_graph_updates``). Without graph updates the rule is ``jax.custom_vjp``'s,
      on graph objects of the arguments' own types (see ``custom_vjp_tree``).

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> clip = nnx.custom_vjp(lambda x: x)
  >>> clip.defvjp(lambda x: (x, None), lambda _, g: (jnp.clip(g[1], -1.0, 1.0),))
  >>> nnx.grad(lambda x: 5.0 * clip(x))(2.0)
  Array(1., dtype=float32, weak_type=True)
  """
  graph = resolve_graph(graph)
  graph_updates = graph and resolve_graph_updates(graph_updates)
  if fun is None:
    return functools.partial(custom_vjp, nondiff_argnums=nondiff_argnums, graph=graph,
                             graph_updates=graph_updates)
  return CustomVjp(fun, nondiff_argnums, graph, graph_updates)
