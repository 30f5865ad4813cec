"""``BatchApply``: run a function on inputs whose leading dims are merged into one.

>>> import jax.numpy as jnp
>>> f = BatchApply(lambda x: x.sum(-1, keepdims=True))   # sees (6, 4)
>>> f(jnp.ones((2, 3, 4))).shape
(2, 3, 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from flaxen.errors.layers import InputShapeError

__all__ = ["BatchApply"]


def _is_array(x: Any) -> bool:
  return isinstance(x, jax.Array | np.ndarray)


class BatchApply:
  """Wraps ``f`` so that every array argument's first ``num_dims`` dims are merged into one
  before the call, and every array output's first dim is split back into them.

  Args:
    f: the function (e.g. a layer that takes one batch dim).
    num_dims: how many leading dims to merge.

  Raises (on call):
    InputShapeError: no array argument, or array arguments with different leading dims.
  """

  def __init__(self, f: Callable[..., Any], num_dims: int = 2):
    self.f = f
    self.num_dims = num_dims

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    leaves = [x for x in jax.tree.leaves((args, kwargs)) if _is_array(x)]
    if not leaves:
      raise InputShapeError("BatchApply", "at least one array argument", (),
                            "pass the batched inputs as arrays")
    lead = leaves[0].shape[:self.num_dims]
    for x in leaves:
      if x.ndim < self.num_dims or x.shape[:self.num_dims] != lead:
        raise InputShapeError(
          "BatchApply", f"every array argument to start with the dims {lead}", x.shape,
          f"give all array arguments the same {self.num_dims} leading dims")

    def merge(x: Any) -> Any:
      return x.reshape((math.prod(lead), *x.shape[self.num_dims:])) if _is_array(x) else x

    def split(y: Any) -> Any:
      return y.reshape((*lead, *y.shape[1:])) if _is_array(y) else y

    args, kwargs = jax.tree.map(merge, (args, kwargs))
    return jax.tree.map(split, self.f(*args, **kwargs))
