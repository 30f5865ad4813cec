"""Cheap-to-trace spellings of the few ``jnp`` operations that layers run on every call.

While tracing, every ``jnp`` function and tracer operator (``x - y``) goes through a jitted
wrapper that costs around 100 µs of Python; a ``lax`` primitive binds directly for a fraction
of that. Each helper here emits the same primitives as its ``jnp`` spelling (so the same
jaxpr, values and gradients) in the common case, and defers to ``jnp`` otherwise.

Under ``grad``, though, each primitive bound outside a jit is linearized on its own (about a
millisecond of Python), while a jitted call's linearization is cached. So the ops run their
math as :func:`inline_jit` kernels: traced once per signature, inlined into the caller's
jaxpr, and differentiated once for all identical layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache, wraps
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from flaxen.typing import Array, Dtype

__all__ = ["cast", "inline_jit", "is_inexact", "mean_over", "same_dtype"]

_HALF = (np.dtype(jnp.float16), np.dtype(jnp.bfloat16))


@cache
def is_inexact(dtype: Dtype) -> bool:
  """``jnp.issubdtype(dtype, jnp.inexact)``, memoized (it is asked on every layer call)."""
  return bool(jnp.issubdtype(dtype, jnp.inexact))


def same_dtype(*xs: object) -> np.dtype | None:
  """The dtype shared by ``xs`` when all are strongly typed jax arrays of one dtype (so no
  promotion or conversion applies between them), else ``None``."""
  dtype = None
  for x in xs:
    if not isinstance(x, jax.Array) or x.weak_type or (dtype is not None and x.dtype != dtype):
      return None
    dtype = x.dtype
  return dtype


def cast(x: object, dtype: Dtype) -> Array:
  """``jnp.asarray(x, dtype)``, returning ``x`` itself when it already is a strongly typed
  array of ``dtype``."""
  if isinstance(x, jax.Array) and not x.weak_type and x.dtype == dtype:
    return x
  return jnp.asarray(x, dtype)


def mean_over(x: Array, axes: Sequence[int]) -> Array:
  """``jnp.mean(x, axes)`` for an array and distinct non-negative ``axes``: for inexact arrays
  a sum divided by the static element count, in float32 for half precision as ``jnp.mean``."""
  dtype = x.dtype
  sizes = [x.shape[a] for a in axes]
  if not axes or x.weak_type or not is_inexact(dtype) or not all(type(s) is int for s in sizes):
    return jnp.mean(x, tuple(axes))  # weak types, integers, symbolic shapes: jnp's rules
  compute = np.dtype(jnp.float32) if dtype in _HALF else dtype
  total = lax.reduce_sum(cast(x, compute), tuple(axes))
  return cast(lax.div(total, compute.type(math.prod(sizes))), dtype)


def inline_jit(*static: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
  """Decorator: ``jax.jit(fun, static_argnames=static, inline=True)``, or ``fun`` itself for
  a call whose static (keyword) arguments are not hashable."""

  def decorate(fun: Callable[..., Any]) -> Callable[..., Any]:
    jitted = jax.jit(fun, static_argnames=static, inline=True)

    @wraps(fun)
    def call(*args: Any, **kwargs: Any) -> Any:
      try:
        hash(tuple(kwargs.get(k) for k in static))
      except TypeError:
        return fun(*args, **kwargs)
      return jitted(*args, **kwargs)

    return call

  return decorate
