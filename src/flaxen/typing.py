"""Type aliases of flaxen's public API, under the names that ``flax.typing`` gives them.

They document intent in signatures; JAX accepts more than they say, so most are broad.

>>> from flaxen.typing import PaddingLike, Shape
>>> padding: PaddingLike = ((1, 1), (0, 0))
>>> shape: Shape = (2, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import jax
from jax import lax

from flaxen.config_context import BaseConfigContext

__all__ = [
  "Array", "ArrayPytree", "Axes", "AxisName", "BaseConfigContext", "Collection",
  "ConvGeneralDilatedT", "DotGeneralT",
  "Dtype", "EinsumT", "FrozenVariableDict", "Initializer", "InitializerProtocol", "K", "LaxPadding",
  "Leaf", "LogicalRules", "MutableCollection", "MutableVariableDict", "PRNGFoldable", "PRNGKey",
  "PaddingLike", "Path", "PathParts", "PrecisionLike", "PromoteDtypeFn", "RNGSequences", "Shape",
  "Sharding",
  "VariableDict",
]

K = TypeVar("K")

Array = jax.Array | Any
ArrayPytree = Any
PRNGKey = jax.Array
RNGSequences = dict[str, PRNGKey]
PRNGFoldable = int | str
Dtype = jax.typing.DTypeLike | Any
Shape = Sequence[int]
Axes = int | Sequence[int]
AxisName = Hashable | None
Leaf = Any
Path = str
PathParts = tuple[Any, ...]

# Variables: collection name -> (nested) dict of arrays.
Collection = Mapping[str, Any]
MutableCollection = dict[str, Any]
VariableDict = Mapping[str, Collection]
# flax.core.FrozenDict is a Mapping; the alias stays here so that typing imports nothing above it.
FrozenVariableDict = Mapping[str, Collection]
MutableVariableDict = dict[str, MutableCollection]

PrecisionLike = (
  None | str | lax.Precision | tuple[str, str] | tuple[lax.Precision, lax.Precision]
)
# 'SAME', 'VALID', 'CIRCULAR', 'CAUSAL', an int for every spatial dim, or one int or
# (low, high) pair per spatial dim.
PaddingLike = str | int | Sequence[int | tuple[int, int]]
LaxPadding = str | Sequence[tuple[int, int]]

DotGeneralT = Callable[..., Array]
ConvGeneralDilatedT = Callable[..., Array]
EinsumT = Callable[..., Array]
PromoteDtypeFn = Callable[..., Any]

Sharding = tuple[AxisName, ...]
LogicalRules = Sequence[tuple[str, str | tuple[str, ...] | None]]


class InitializerProtocol(Protocol):
  """``init(key, shape, dtype) -> array``, the signature of every initializer."""

  def __call__(self, key: PRNGKey, shape: Shape, dtype: Dtype = ...) -> Array: ...


Initializer = InitializerProtocol | Callable[..., Any]
