"""``nnx.make_jaxpr``: the jaxpr of a function of graph objects (without graph updates).

The graph objects among the arguments enter as their state values; the jaxpr's outputs are
the function's output followed by the new values of the Variables it updated. Nothing is
written back: the function only runs abstractly.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> m = nnx.Dict(w=nnx.Param(jnp.ones(3)))
>>> jaxpr = nnx.make_jaxpr(lambda m: m.w[...].sum(), graph_updates=False)(m)
>>> len(jaxpr.jaxpr.invars)
1
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax

from flaxen.errors.nnx_transforms import GraphUpdatesUnsupportedError
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.transforms import tree_mode
from flaxen.nnx.transforms.autodiff_tree import _Traced

__all__ = ["make_jaxpr"]


def make_jaxpr(f: Callable | None = None, *, graph: bool | None = None,
               graph_updates: bool | None = None,
               static_argnums: int | Sequence[int] = ()) -> Callable:
  """Like ``jax.make_jaxpr``; graph objects among the arguments enter as their state.

  Args:
    f: the function (without it, a decorator).
    graph: graph mode (shared references kept) or tree mode.
    graph_updates: must be False (structure changes have no jaxpr).
    static_argnums: positional arguments held as constants.

  Returns:
    A function returning the ``ClosedJaxpr``.

  Raises:
    GraphUpdatesUnsupportedError: in graph mode with graph updates.
  """
  if f is None:
    return functools.partial(make_jaxpr, graph=graph, graph_updates=graph_updates,
                             static_argnums=static_argnums)
  tree_mode.check_not_bound_method(f, "nnx.make_jaxpr")
  graph = resolve_graph(graph)
  if graph and resolve_graph_updates(graph_updates):
    raise GraphUpdatesUnsupportedError("nnx.make_jaxpr")
  statics = {static_argnums} if isinstance(static_argnums, int) else set(static_argnums)

  @functools.wraps(f)
  def wrapper(*args: Any, **kwargs: Any) -> Any:
    dynamic = tuple(None if i in statics else a for i, a in enumerate(args))
    pure = tree_mode.PureArgs(((dynamic, kwargs),), not graph, "nnx.make_jaxpr")

    def call(ak: tuple) -> Any:
      given, kw = ak
      return f(*[args[i] if i in statics else a for i, a in enumerate(given)], **kw)

    traced = _Traced(call, pure, False, not graph, "nnx.make_jaxpr")

    def fn(form: Any) -> tuple:
      out, (_, new_values) = traced.run([form], pack_out=True)
      return out, new_values

    return jax.make_jaxpr(fn)(pure.pure[0])

  return wrapper
