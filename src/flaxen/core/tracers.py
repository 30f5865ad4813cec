"""Which JAX trace is running: a scope bound in one trace must not be used in another.

>>> import jax
>>> from flaxen import core, errors
>>> outer = core.current_trace()
>>> core.check_trace_level(outer)  # same trace: fine
>>> def inner(x):
...   try:
...     core.check_trace_level(outer)
...   except errors.JaxTransformError:
...     return x + 1
...   return x
>>> float(jax.jit(inner)(1.0))
2.0
"""

from __future__ import annotations

from typing import Any

from jax.extend.core import get_opaque_trace_state

from flaxen import errors

__all__ = ["current_trace", "check_trace_level"]


def current_trace() -> Any:
  """An opaque token of the running JAX trace (compare tokens with ``==``)."""
  return get_opaque_trace_state(convention="flax")


def check_trace_level(base_level: Any) -> None:
  """Raise :class:`flaxen.errors.JaxTransformError` unless the running trace is
  ``base_level`` (from :func:`current_trace` where the scope was bound)."""
  if current_trace() != base_level:
    raise errors.JaxTransformError()
