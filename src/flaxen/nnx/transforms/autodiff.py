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
from flaxen.nnx.state import State
from flaxen.nnx.transforms import lift
from flaxen.nnx.variables import Param, Variable

__all__ = ["DiffState", "grad", "value_and_grad"]


class DiffState:
  """Differentiate argument ``argnum`` w.r.t. the Variables matching ``filter``."""

  def __init__(self, argnum: int, filter: Any):
    self.argnum = argnum
    self.filter = filter

  def __repr__(self) -> str:
    return f"DiffState({self.argnum}, {self.filter!r})"


def _specs(argnums: Any) -> tuple[list[tuple[int, Any]], bool]:
  single = isinstance(argnums, int | DiffState)
  items = [argnums] if single else list(argnums)
  specs = [(a.argnum, a.filter) if isinstance(a, DiffState) else (a, Param) for a in items]
  return specs, single


def value_and_grad(f: Callable | None = None,
                   argnums: int | DiffState | Sequence[int | DiffState] = 0,
                   has_aux: bool = False, *, holomorphic: bool = False,
                   allow_int: bool = False, reduce_axes: Sequence[Any] = ()) -> Callable:
  """Like ``jax.value_and_grad``; graph arguments get their gradients as ``State``s.

  Returns:
    A function returning ``(value, grads)`` (``((value, aux), grads)`` with ``has_aux``);
    ``grads`` is a tuple when ``argnums`` is a sequence. Without ``f``, a decorator.
  """
  if f is None:
    return functools.partial(value_and_grad, argnums=argnums, has_aux=has_aux,
                             holomorphic=holomorphic, allow_int=allow_int)
  specs, single = _specs(argnums)

  @functools.wraps(f)
  def wrapper(*args: Any) -> Any:
    per_arg = [lift.find_nodes(a) for a in args]
    nodes, owners = [], []  # owners[k] = (argnum, position among that arg's leaves)
    for a, (leaves, _, positions) in enumerate(per_arg):
      for p in positions:
        nodes.append(leaves[p])
        owners.append((a, p))
    graphdef, leaves, paths, _ = flatten(tuple(nodes))
    node_leaves: list[list[int]] = [[] for _ in nodes]
    for j, path in enumerate(paths):
      node_leaves[path[0]].append(j)

    diff_inputs, diff_leaves = [], set()
    for a, filt in specs:
      predicate = filterlib.to_predicate(filt)
      arg_leaves, treedef, _ = per_arg[a]
      arg_leaves = list(arg_leaves)
      for k, (owner, p) in enumerate(owners):
        if owner != a:
          continue
        chosen = [j for j in node_leaves[k] if predicate(paths[j][1:], leaves[j])]
        diff_leaves.update(chosen)
        arg_leaves[p] = State.from_flat_path(
          [(paths[j][1:], lift.raw(leaves[j]) if not isinstance(leaves[j], Variable)
            else leaves[j].copy()) for j in chosen])
      diff_inputs.append(treedef.unflatten(arg_leaves))

    def pure(diff_inputs: tuple) -> tuple:
      values = list(leaves)
      new_args = [list(arg_leaves) for arg_leaves, _, _ in per_arg]
      for (a, _), tree in zip(specs, diff_inputs, strict=True):
        new_args[a] = per_arg[a][1].flatten_up_to(tree)
      for k, (a, p) in enumerate(owners):
        if isinstance(new_args[a][p], State):
          flat = dict(new_args[a][p].flat_state())
          for j in node_leaves[k]:
            if j in diff_leaves:
              values[j] = flat[paths[j][1:]]
      root, refs = unflatten(graphdef, values)
      for k, (a, p) in enumerate(owners):
        new_args[a][p] = root[k]
      call_args = [per_arg[a][1].unflatten(x) for a, x in enumerate(new_args)]
      out = f(*call_args)
      value, aux = out if has_aux else (out, None)
      new_values, update = lift.capture(list(root), refs, graphdef, [])
      return value, (aux, new_values, update)

    grad_fn = jax.value_and_grad(pure, has_aux=True, holomorphic=holomorphic,
                                 allow_int=allow_int)
    (value, (aux, new_values, update)), grads = grad_fn(tuple(diff_inputs))
    if update.same and all(isinstance(x, Variable) for x in leaves):
      lift.write_values(leaves, new_values)
    else:
      lift.apply(update, new_values, nodes)
    grads = grads[0] if single else grads
    return ((value, aux) if has_aux else value), grads

  return wrapper


def grad(f: Callable | None = None, argnums: int | DiffState | Sequence[int | DiffState] = 0,
         has_aux: bool = False, *, holomorphic: bool = False, allow_int: bool = False,
         reduce_axes: Sequence[Any] = ()) -> Callable:
  """Like ``jax.grad``; graph arguments get their gradients as ``State``s.

  Returns:
    A function returning ``grads`` (``(grads, aux)`` with ``has_aux``). Without ``f``, a
    decorator.
  """
  if f is None:
    return functools.partial(grad, argnums=argnums, has_aux=has_aux, holomorphic=holomorphic,
                             allow_int=allow_int)
  vg = value_and_grad(f, argnums, has_aux, holomorphic=holomorphic, allow_int=allow_int)

  @functools.wraps(f)
  def wrapper(*args: Any) -> Any:
    (value, grads) = vg(*args)
    return (grads, value[1]) if has_aux else grads

  return wrapper
