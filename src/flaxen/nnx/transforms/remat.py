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

from flaxen.nnx.transforms import lift

__all__ = ["remat"]


def remat(f: Callable | None = None, *, prevent_cse: bool = True,
          static_argnums: int | Sequence[int] = (), policy: Callable | None = None) -> Any:
  """Rematerializes ``f`` like ``jax.checkpoint``; graph objects among its arguments are
  updated.

  Args:
    f: the function; omitted, ``remat`` returns a decorator.
    prevent_cse, policy: as in ``jax.checkpoint``.
    static_argnums: positions of arguments passed as they are (Python values).

  Returns:
    The rematerialized function.
  """
  if f is None:
    return functools.partial(remat, prevent_cse=prevent_cse, static_argnums=static_argnums,
                             policy=policy)
  static = {static_argnums} if isinstance(static_argnums, int) else set(static_argnums)

  @functools.wraps(f)
  def wrapper(*args: Any) -> Any:
    static_args = {i: a for i, a in enumerate(args) if i in static}
    g = lift.GraphArgs(tuple(None if i in static else a for i, a in enumerate(args)))
    facts = []

    @functools.partial(jax.checkpoint, prevent_cse=prevent_cse, policy=policy)
    def pure(leaves: list, values: list) -> tuple:
      inner_args, inner, refs = g.rebuild(leaves, values)
      inner_args = tuple(static_args.get(i, a) for i, a in enumerate(inner_args))
      out_leaves, treedef, positions, out_nodes = lift.take_nodes(f(*inner_args))
      new_values, update = lift.capture(inner, refs, g.graphdef, out_nodes)
      facts.append((update, treedef, positions))
      return out_leaves, new_values

    out_leaves, new_values = pure(g.leaves, g.values)
    update, treedef, positions = facts[-1]
    for p, node in zip(positions, g.write_back(update, new_values), strict=True):
      out_leaves[p] = node
    return treedef.unflatten(out_leaves)

  return wrapper
