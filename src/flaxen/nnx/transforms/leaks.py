"""Finding JAX tracers that a traced function left where the graph keeps no state.

Variables and array attributes are state: a transform carries their traced values out and
writes concrete ones back. Everything else in a graph (static attribute values, closures
and objects held in them, Variable metadata) is kept as it is, so a tracer stored there
would outlive its trace and fail later, far from the mistake. After the traced function
returns, transforms call :func:`check_no_leaks` on the new GraphDef (trace time only; a
cached call never runs it).

>>> import jax, jax.numpy as jnp
>>> from flaxen import errors, nnx
>>> class Box:
...   pass
>>> m = nnx.Module()
>>> m.box = Box()
>>> @nnx.jit
... def f(m, x):
...   m.box.kept = x * 2
>>> try:
...   f(m, jnp.ones(2))
... except errors.TracerLeakError as e:
...   print(e.path)
('box', 'kept')
"""

from __future__ import annotations

import functools
import types
from typing import Any

from jax._src.core import trace_ctx  # private, as in variables.py: the current trace
from jax.core import Tracer

from flaxen.errors.nnx import TracerLeakError
from flaxen.nnx.graph import GraphDef, _unwrap
from flaxen.nnx.object import Object
from flaxen.nnx.variables import Variable

__all__ = ["check_no_leaks", "find_tracer"]

_MAX_DEPTH = 4  # how far into objects held in static attributes the search looks
_ATOMS = (int, float, bool, str, bytes, complex, type(None), type, types.ModuleType,
          types.BuiltinFunctionType, Object, Variable)  # graph nodes are walked as nodes


def check_no_leaks(graphdef: GraphDef, inputs: list, transform: str) -> None:
  """Raises ``TracerLeakError`` naming the first static path that holds a tracer of the
  trace ``inputs`` (traced arguments) belong to; any tracer counts if none is traced.

  ``graphdef`` is that of the tuple of graph arguments: a path's first key is the
  argument's index among them."""
  trace = next((x._trace for x in inputs if isinstance(x, Tracer)), None)
  _check(graphdef, trace, transform)


def check_current_trace(graphdef: GraphDef, transform: str) -> None:
  """:func:`check_no_leaks` from inside the traced function: tracers of the current trace
  count (a transform's tracers, e.g. vmap's, need not be among the inputs)."""
  _check(graphdef, trace_ctx.trace, transform)


def _check(graphdef: GraphDef, trace: Any, transform: str) -> None:
  seen: set[int] = set()
  for path, value in _statics(graphdef.root, ()):
    found = find_tracer(value, trace, seen)
    if found is not None:
      raise TracerLeakError(transform, path[0], (*path[1:], *found), value)


def _statics(d: tuple, path: tuple):
  """``(path, value)`` of every static value and Variable metadata entry in a GraphDef."""
  tag = d[0]
  if tag == "static":
    value = _unwrap(d[1])
    if type(value) not in _SCALARS:
      yield path, value
  elif tag == "var":
    for key, value in d[3]:
      yield path + (key,), _unwrap(value)
  elif tag in ("node", "dict", "list", "tuple", "pytree"):
    for key, sub in d[-1]:
      yield from _statics(sub, path + (key,))


_SCALARS = frozenset({int, float, bool, str, bytes, complex, type(None)})


def find_tracer(value: Any, trace: Any, seen: set[int], depth: int = 0) -> tuple | None:
  """The path inside ``value`` to a tracer of ``trace`` (``()`` for ``value`` itself), or
  ``None``. Looks into containers, ``functools.partial``, closures and object attributes."""
  if isinstance(value, Tracer):
    return () if trace is None or value._trace is trace else None
  if isinstance(value, _ATOMS) or depth > _MAX_DEPTH or id(value) in seen:
    return None
  seen.add(id(value))
  if isinstance(value, dict):
    items = value.items()
  elif isinstance(value, list | tuple | set | frozenset):
    items = enumerate(value)
  elif isinstance(value, functools.partial):
    items = [("func", value.func), *enumerate(value.args), *value.keywords.items()]
  elif isinstance(value, types.FunctionType):
    items = [(name, _cell(cell)) for name, cell in
             zip(value.__code__.co_freevars, value.__closure__ or (), strict=True)]
  elif isinstance(value, types.MethodType):
    items = [("__func__", value.__func__)]
  else:
    items = getattr(value, "__dict__", {}).items()
  for key, item in items:
    found = find_tracer(item, trace, seen, depth + 1)
    if found is not None:
      return (key, *found)
  return None


def _cell(cell: Any) -> Any:
  try:
    return cell.cell_contents
  except ValueError:  # an empty cell (a name not yet bound)
    return None
