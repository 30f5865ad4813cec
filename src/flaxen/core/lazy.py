"""``lazy_init``: variables from input shapes only, by partial evaluation.

Inputs given as ``jax.ShapeDtypeStruct`` are unknown; everything computed from the known
inputs alone (the rng keys, the shapes) is computed, under ``jax.jit``, and whatever would
need the unknown values is never run. An output that depends on an unknown input raises
:class:`flaxen.errors.LazyInitError`. ``lazy_init(fn)`` is the lazy ``core.init`` of a
function ``fn(scope, *args)``; Linen's ``Module.lazy_init`` runs ``Module.init`` through
:func:`partial_evaluate`.

>>> import jax, jax.numpy as jnp
>>> from flaxen import core
>>> def dense(scope, x):
...   w = scope.param("w", jax.nn.initializers.lecun_normal(), (x.shape[-1], 2))
...   return x @ w
>>> abstract = jax.ShapeDtypeStruct((8, 3), jnp.float32)
>>> core.lazy_init(dense)(jax.random.key(0), abstract)["params"]["w"].shape
(3, 2)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.api_util
import jax.extend.linear_util as lu
import numpy as np
from jax.interpreters import partial_eval as pe

from flaxen import errors
from flaxen.core.filters import CollectionFilter

__all__ = ["lazy_init", "partial_evaluate"]

_ARRAY = (jax.Array, np.ndarray, np.generic)


def lazy_init(fn: Callable[..., Any], mutable: CollectionFilter = True,
              flags: Mapping[str, Any] | None = None) -> Callable[..., Any]:
  """``core.init(fn, mutable, flags)`` returning only the variables, computed lazily.

  Args:
    fn: ``fn(scope, *args)``.
    mutable: the collections that may be created (default all).
    flags: read with ``Scope.get_flag``.

  Returns:
    ``wrapper(rngs, *args, **kwargs) -> variables``; ``args`` may be
    ``jax.ShapeDtypeStruct``.
  """
  from flaxen.core.scope import init  # scope imports this package's other modules

  return partial_evaluate(lambda rngs, *a, **kw: init(fn, mutable, flags)(rngs, *a, **kw)[1])


def partial_evaluate(fn: Callable[..., Any]) -> Callable[..., Any]:
  """Wrap ``fn`` so that its ``jax.ShapeDtypeStruct`` arguments are only shapes.

  Args:
    fn: any function of pytrees.

  Returns:
    ``wrapper(*args, **kwargs)`` returning ``fn``'s output, computed without the values of
    the abstract arguments.

  Raises:
    flaxen.errors.LazyInitError: an output depends on an abstract argument's values.
  """

  @functools.wraps(fn)
  def wrapper(*args: Any, **kwargs: Any) -> Any:
    is_sds = lambda x: isinstance(x, jax.ShapeDtypeStruct)
    leaves, treedef = jax.tree.flatten((args, kwargs), is_leaf=is_sds)
    arrays = [i for i, x in enumerate(leaves) if isinstance(x, _ARRAY)]
    out_tree: list[Any] = []

    def known_part(*values: Any) -> list[Any]:
      full = list(leaves)
      for i, v in zip(arrays, values, strict=True):
        full[i] = v
      free = [i for i, x in enumerate(full) if is_sds(x) or i in arrays]

      def flat_fn(*xs: Any) -> list[Any]:
        call = list(full)
        for i, x in zip(free, xs, strict=True):
          call[i] = x
        a, kw = jax.tree.unflatten(treedef, call)
        out, tree = jax.tree.flatten(fn(*a, **kw))
        out_tree.append(tree)
        return out

      pvals = [pe.PartialVal.unknown(jax.core.ShapedArray(full[i].shape, full[i].dtype))
               if is_sds(full[i]) else pe.PartialVal.known(full[i]) for i in free]
      dbg = jax.api_util.debug_info("lazy_init", flat_fn, tuple(full[i] for i in free), {})
      _, out_pvals, _ = pe.trace_to_jaxpr_nounits(lu.wrap_init(flat_fn, debug_info=dbg), pvals)
      for pval in out_pvals:
        if not pval.is_known():
          raise errors.LazyInitError(pval)
      return [pval.get_known() for pval in out_pvals]

    values = jax.jit(known_part)(*(leaves[i] for i in arrays))
    return jax.tree.unflatten(out_tree[-1], values)

  return wrapper
