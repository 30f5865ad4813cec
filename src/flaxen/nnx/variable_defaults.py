"""``nnx.var_defaults`` and ``nnx.transform_metadata``: Variable-wide settings and the
sharding-axis bookkeeping of a function that maps over one axis of its Variables.

``transform_metadata(in_axes=0, out_axes=1, partition='layers')`` is what ``vmap`` and
``scan`` do to Variable metadata, as a plain decorator: the input Variables lose the axis
``in_axes`` (with its name) while the function runs and get it back after; Variables it
returns gain the axis named ``partition`` at ``out_axes``.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> v = nnx.Param(jnp.zeros(()), out_sharding=("layers", "d"), eager_sharding=False)
>>> @nnx.transform_metadata(in_axes=0, out_axes=0, partition="layers")
... def f(v):
...   return v.out_sharding
>>> f(v), v.out_sharding
(('d',), ('layers', 'd'))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flaxen.nnx.graphlib import iter_graph
from flaxen.nnx.variables import Variable

__all__ = ["var_defaults", "transform_metadata"]


def var_defaults(*, hijax: bool | None = None, ref: bool | None = None) -> VarDefaults:
  """Defaults for new Variables (``hijax``, ``ref``): a ``with`` block, or a call that
  sets them. flaxen has a single kind of Variable, so both are recorded
  (``nnx.var_defaults.current()``) but change nothing."""
  return VarDefaults(hijax=hijax, ref=ref)


class VarDefaults:
  """What ``var_defaults(...)`` returns: the new defaults, undone on leaving a block."""

  _stack: list[dict[str, Any]] = [{"hijax": False, "ref": False}]

  def __init__(self, *, hijax: bool | None = None, ref: bool | None = None):
    new = dict(self._stack[-1])
    new.update({k: v for k, v in (("hijax", hijax), ("ref", ref)) if v is not None})
    self._stack.append(new)

  def __enter__(self) -> VarDefaults:
    return self

  def __exit__(self, *exc: Any) -> None:
    if len(self._stack) > 1:
      self._stack.pop()

  @classmethod
  def current(cls) -> dict[str, Any]:
    return dict(cls._stack[-1])


def _variables(tree: Any, graph: bool | None) -> list[Variable]:
  return [v for _, v in iter_graph(tree, graph=graph) if isinstance(v, Variable)]


def _with_axes(tree: Any, axes: Any, graph: bool | None) -> list[tuple[Variable, int]]:
  """``(variable, axis)`` for the Variables of ``tree``; ``axes`` is an int for all of
  them or a tuple with one entry per element of a tuple ``tree`` (entries that are not
  ints, such as ``None`` or ``nnx.Carry``, leave their part alone)."""
  if type(axes) is tuple and isinstance(tree, tuple) and len(axes) == len(tree):
    return [pair for sub, a in zip(tree, axes, strict=True) for pair in
            _with_axes(sub, a, graph)]
  if not isinstance(axes, int) or isinstance(axes, bool):
    return []
  return [(v, axes) for v in _variables(tree, graph)]


def transform_metadata(f: Callable | None = None, *, in_axes: Any = 0, out_axes: Any = 0,
                       partition: Any, graph: bool | None = None) -> Any:
  """Decorator: ``f``'s input Variables lose the axis ``in_axes`` from their sharding
  names while ``f`` runs (restored after), its output Variables gain ``partition`` at
  ``out_axes``. ``None`` axes leave the metadata alone; a tuple gives one axis per
  argument (per output element), as ``nnx.vmap`` / ``nnx.scan`` take them (``nnx.Carry``
  entries are left alone too)."""
  if f is None:
    return functools.partial(transform_metadata, in_axes=in_axes, out_axes=out_axes,
                             partition=partition, graph=graph)

  @functools.wraps(f)
  def wrapper(*args: Any, **kwargs: Any) -> Any:
    kw_axes = in_axes if isinstance(in_axes, int) else None  # keyword arguments: an int only
    inputs = _with_axes(args, in_axes, graph) + _with_axes(kwargs, kw_axes, graph)
    for v, axis in inputs:
      v.remove_axis(axis, partition)
    try:
      out = f(*args, **kwargs)
    finally:
      for v, axis in inputs:
        v.add_axis(axis, partition)
    known = {id(v) for v, _ in inputs}
    for v, axis in _with_axes(out, out_axes, graph):
      if id(v) not in known:
        v.add_axis(axis, partition)
    return out

  return wrapper


var_defaults.current = VarDefaults.current  # type: ignore[attr-defined]
