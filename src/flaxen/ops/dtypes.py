"""Dtype rules of layers: params live in ``param_dtype``, the computation runs in ``dtype``.

A layer creates its params in ``param_dtype`` (float32 by default), then promotes its inputs
and params together to ``dtype``; with ``dtype=None`` it computes in their JAX result type.

>>> import jax.numpy as jnp
>>> x, w = promote_dtype(jnp.ones(2, jnp.bfloat16), jnp.ones(2), dtype=None)
>>> x.dtype, w.dtype
(dtype('float32'), dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp

from flaxen.errors.layers import NonFloatingDtypeError
from flaxen.ops._lax import cast, is_inexact, same_dtype
from flaxen.typing import Dtype

__all__ = ["PromoteFn", "canonicalize_dtype", "from_varargs", "promote", "promote_dtype"]

# A user's promotion rule in the ops' convention (NNX's): one tuple in, one sequence out.
PromoteFn = Callable[..., Sequence[Any]]


def canonicalize_dtype(*args: Any, dtype: Dtype | None = None, inexact: bool = True) -> Any:
  """The dtype a computation over ``args`` runs in.

  Args:
    *args: arrays or scalars; ``None`` entries are ignored.
    dtype: the requested dtype; when ``None``, the result type of ``args``.
    inexact: require a floating or complex dtype; an integer result type of ``args`` is
      promoted to float32 (at least).

  Returns:
    A numpy dtype.

  Raises:
    NonFloatingDtypeError: ``inexact`` is set and the requested ``dtype`` is not inexact.

  >>> canonicalize_dtype(jnp.ones(2, jnp.int32))
  dtype('float32')
  """
  if dtype is None:
    present = [a for a in args if a is not None]
    # Arrays of one dtype (the usual layer call) need no promotion lattice.
    dtype = same_dtype(*present)
    if dtype is None:
      present = [jnp.asarray(a) if isinstance(a, list | tuple) else a for a in present]
      dtype = jnp.result_type(*present)
    if inexact and not is_inexact(dtype):
      dtype = jnp.promote_types(jnp.float32, dtype)
  dtype = jnp.dtype(dtype)
  if inexact and not is_inexact(dtype):
    raise NonFloatingDtypeError(dtype)
  return dtype


def promote_dtype(*args: Any, dtype: Dtype | None = None, inexact: bool = True) -> list[Any]:
  """Casts every non-``None`` argument to the common dtype of :func:`canonicalize_dtype`.

  Returns:
    A list with one entry per argument, ``None`` kept as ``None``.

  >>> [a.dtype for a in promote_dtype(jnp.ones(1), jnp.ones(1), dtype=jnp.float16)]
  [dtype('float16'), dtype('float16')]
  """
  dtype = canonicalize_dtype(*args, dtype=dtype, inexact=inexact)
  return [None if a is None else cast(a, dtype) for a in args]


def promote(args: tuple, *, dtype: Dtype | None, inexact: bool = True,
            rule: PromoteFn | None = None) -> Sequence[Any]:
  """``args`` promoted by ``rule`` (a layer's ``promote_dtype``), or by :func:`promote_dtype`
  when ``rule`` is ``None`` (the default rule, kept on the fast path).

  ``rule`` is called as Flax's NNX layers call theirs: ``rule(args, dtype=dtype)``, plus
  ``inexact=False`` only where that is asked (embedding lookups).

  >>> promote((jnp.ones(1), None), dtype=jnp.float16, rule=lambda a, dtype: a)[1] is None
  True
  """
  if rule is None:
    return promote_dtype(*args, dtype=dtype, inexact=inexact)
  out = rule(args, dtype=dtype) if inexact else rule(args, dtype=dtype, inexact=False)
  return tuple(out)


def from_varargs(fn: Callable[..., Any]) -> PromoteFn | None:
  """The ops' form of a Linen-style rule (``fn(*args, dtype=...)``, as Linen's layers call
  their ``promote_dtype``); ``None`` for :func:`promote_dtype` itself, so layers left at
  the default keep the default path.

  >>> from_varargs(promote_dtype) is None
  True
  """
  if fn is promote_dtype:
    return None

  def rule(args: tuple, /, **kwargs: Any) -> tuple:
    return tuple(fn(*args, **kwargs))

  return rule
