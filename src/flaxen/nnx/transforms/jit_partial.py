"""``nnx.jit_partial`` and ``nnx.cached_partial``: a jitted function with graph objects
bound as its first arguments.

``nnx.jit`` caches its graph walk per argument structure, so binding needs nothing more
for speed; these exist for programs written against Flax (and ``jit_partial`` checks the
bound objects once, when made). ``jit_partial``'s docstring has an example.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from flaxen.nnx.graph import flatten, unflatten
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.transforms import lift, tree_mode
from flaxen.nnx.transforms.jit import JitWrapped, jit
from flaxen.nnx.variables import Variable

__all__ = ["jit_partial", "JitPartial", "cached_partial"]


class JitPartial:
  """``nnx.jit_partial``'s result: the jitted function with its first arguments bound."""

  def __init__(self, wrapped: JitWrapped, partial_args: tuple):
    functools.update_wrapper(self, wrapped.fun)
    self.wrapped = wrapped
    self.partial_args = partial_args

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    return self.wrapped(*self.partial_args, *args, **kwargs)

  def lower(self, *args: Any, **kwargs: Any) -> Any:
    """``jax.jit(...).lower`` for the bound function: the arguments after the bound ones."""
    return _PartialLowered(self.wrapped.lower(*self.partial_args, *args, **kwargs),
                           self.partial_args)


class _PartialLowered:
  def __init__(self, lowered: Any, partial_args: tuple):
    self.lowered, self.partial_args = lowered, partial_args

  def compile(self, *args: Any, **kwargs: Any) -> Callable:
    compiled = self.lowered.compile(*args, **kwargs)
    return _PartialCompiled(compiled, self.partial_args)

  def __getattr__(self, name: str) -> Any:
    return getattr(self.lowered, name)


class _PartialCompiled:
  def __init__(self, compiled: Any, partial_args: tuple):
    self.compiled, self.partial_args = compiled, partial_args

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    return self.compiled(*self.partial_args, *args, **kwargs)

  def __getattr__(self, name: str) -> Any:
    return getattr(self.compiled, name)


def jit_partial(fun: Callable, *partial_args: Any, in_shardings: Any = None,
                out_shardings: Any = None, static_argnums: int | Sequence[int] | None = None,
                static_argnames: str | Sequence[str] | None = None,
                donate_argnums: int | Sequence[int] | None = None,
                donate_argnames: str | Sequence[str] | None = None, keep_unused: bool = False,
                device: Any = None, backend: str | None = None, inline: bool = False,
                graph: bool | None = None, graph_updates: bool | None = None) -> JitPartial:
  """``nnx.jit(fun)`` with ``partial_args`` bound as its first arguments.

  The options index the full argument list (bound arguments first), as for ``nnx.jit``.
  The bound graph objects are checked (tree mode: no Variable twice) here, and their walk
  is cached by ``nnx.jit`` as for any repeated call.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  >>> forward = nnx.jit_partial(lambda m, x: m(x), model, graph=False)
  >>> forward(jnp.ones((1, 2))).shape
  (1, 3)
  """
  wrapped = jit(fun, in_shardings=in_shardings, out_shardings=out_shardings,
                static_argnums=static_argnums, static_argnames=static_argnames,
                donate_argnums=donate_argnums, donate_argnames=donate_argnames,
                keep_unused=keep_unused, device=device, backend=backend, inline=inline,
                graph=graph, graph_updates=graph_updates)
  if wrapped._tree:
    tree_mode.check_unique(partial_args, "nnx.jit_partial")
  return JitPartial(wrapped, partial_args)


def cached_partial(f: Callable, *cached_args: Any, graph: bool | None = None,
                   graph_updates: bool | None = None) -> Callable:
  """``functools.partial(f, *cached_args)``, for graph objects passed on every call.

  In graph mode with graph updates the graph objects among ``cached_args`` are replaced by
  copies of their structure that share their Variables, so the function sees them as
  objects of their own (Flax's behaviour); ``nnx.jit`` caches its graph walk per argument
  structure, so nothing more is needed for speed. Otherwise it is ``functools.partial``.
  """
  if resolve_graph(graph) and resolve_graph_updates(graph_updates):
    leaves, treedef, positions = lift.find_nodes(cached_args)
    if positions:
      graphdef, state, _, refs = flatten(tuple(leaves[p] for p in positions))
      shared = {i: r for i, r in enumerate(refs) if isinstance(r, Variable)}
      copies, _ = unflatten(graphdef, [lift.raw(x) for x in state], shared)
      for p, node in zip(positions, copies, strict=True):
        leaves[p] = node
      cached_args = treedef.unflatten(leaves)
  return functools.partial(f, *cached_args)
