"""``nnx.pmap``: ``jax.pmap`` for functions that take, mutate and return graph objects.

It is ``nnx.vmap`` with the mapped axis spread over devices: the same argument handling
(``StateAxes``, prefixes shaped like the argument, graph and tree mode), the same grouping
of outputs by axis, only the JAX transform differs. Positions in
``static_broadcasted_argnums`` are passed to ``f`` as they are, outside the mapping.

>>> import jax, jax.numpy as jnp
>>> from flaxen import nnx
>>> counter = nnx.BatchStat(jnp.zeros((1,)))
>>> @nnx.pmap(axis_size=1)
... def step(c, x):
...   c.value = c.value + x
...   return x * 2
>>> step(counter, jnp.ones((1,))), counter.value
(Array([2.], dtype=float32), Array([1.], dtype=float32))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax

from flaxen.nnx.transforms.vmap import _Vmapped

__all__ = ["pmap"]


class _Pmapped(_Vmapped):
  name = "pmap"
  jax_transform = staticmethod(jax.pmap)

  def __init__(self, f: Callable, static: tuple[int, ...], *rest: Any, **kwargs: Any):
    super().__init__(f, *rest, **kwargs)
    self.static = static

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    if not self.static:
      return super().__call__(*args, **kwargs)
    fixed = {i: args[i] for i in self.static if i < len(args)}
    dynamic = [a for i, a in enumerate(args) if i not in fixed]
    f = self.f

    def call(*dyn: Any, **kw: Any) -> Any:  # the static arguments put back in place
      it = iter(dyn)
      return f(*(fixed[i] if i in fixed else next(it) for i in range(len(args))), **kw)

    inner = _Vmapped.__new__(type(self))
    inner.__dict__.update(self.__dict__, f=call, static=())
    return inner(*dynamic, **kwargs)


def pmap(f: Callable | None = None, *, axis_name: Any = None, in_axes: Any = 0,
         out_axes: Any = 0, static_broadcasted_argnums: int | Iterable[int] = (),
         devices: Sequence[jax.Device] | None = None, backend: str | None = None,
         axis_size: int | None = None, donate_argnums: int | Iterable[int] = (),
         global_arg_shapes: Any = None,
         transform_metadata: Mapping[str, Any] = {},  # noqa: B006 (read only)
         graph: bool | None = None, graph_updates: bool | None = None) -> Any:
  """Maps ``f`` over devices like ``jax.pmap``; graph objects among its arguments are
  updated, as with ``nnx.vmap``.

  Args:
    f: the function; omitted, ``pmap`` returns a decorator.
    axis_name, devices, backend, axis_size: as in ``jax.pmap``.
    in_axes, out_axes, transform_metadata, graph, graph_updates: as in ``nnx.vmap``.
    static_broadcasted_argnums: positions of arguments passed to ``f`` as they are.
    donate_argnums, global_arg_shapes: accepted for Flax's signature; not used (the state
      of graph arguments must come back, so it is never donated).

  Returns:
    The mapped function.
  """
  if f is None:
    return functools.partial(
      pmap, axis_name=axis_name, in_axes=in_axes, out_axes=out_axes,
      static_broadcasted_argnums=static_broadcasted_argnums, devices=devices,
      backend=backend, axis_size=axis_size, donate_argnums=donate_argnums,
      global_arg_shapes=global_arg_shapes, transform_metadata=transform_metadata,
      graph=graph, graph_updates=graph_updates)
  static = ((static_broadcasted_argnums,) if isinstance(static_broadcasted_argnums, int)
            else tuple(static_broadcasted_argnums))
  options = dict(axis_name=axis_name, axis_size=axis_size, devices=devices, backend=backend)
  return _Pmapped(f, static, in_axes, out_axes, transform_metadata, options, graph,
                  graph_updates)
