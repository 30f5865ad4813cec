"""Type aliases of flaxen's public API, under the names that ``flax.typing`` gives them.

They document intent in signatures; JAX accepts more than they say, so most are broad.

>>> from flaxen.typing import PaddingLike, Shape
>>> padding: PaddingLike = ((1, 1), (0, 0))
>>> shape: Shape = (2, 3)
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import jax
import numpy as np
from jax import lax

from flaxen.config_context import BaseConfigContext

__all__ = [
  "Array", "ArrayPytree", "Axes", "AxisName", "BaseConfigContext", "Collection",
  "ConvGeneralDilatedT", "DotGeneralT",
  "Dtype", "EinsumT", "FrozenVariableDict", "Initializer", "InitializerProtocol", "K", "LaxPadding",
  "Leaf", "LogicalRules", "MutableCollection", "MutableVariableDict", "PRNGFoldable", "PRNGKey",
  "PaddingLike", "Path", "PathParts", "PrecisionLike", "PromoteDtypeFn", "RNGSequences", "Shape",
  "Sharding",
  "VariableDict", "Axis", "ScanAxis", "In", "Out", "InOutAxis", "InOutScanAxis", "Key",
  "is_key_like", "ShapeDtype", "has_shape_dtype", "SizeBytes", "HashableMapping",
  "PytreeDeque", "Missing", "MISSING", "LogicalNames", "LogicalPartitionSpec",
  "LogicalPartitionSpecPytree", "PartitionSpecPytree",
]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

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

Sharding = tuple[AxisName, ...]
LogicalRules = Sequence[tuple[str, str | tuple[str, ...] | None]]
LogicalNames = tuple[str | None, ...]
LogicalPartitionSpec = Any  # a PartitionSpec of logical axis names
LogicalPartitionSpecPytree = Any
PartitionSpecPytree = Any


class PromoteDtypeFn(Protocol):
  """``promote(args, /, *, dtype=None, inexact=True) -> args``: a layer's dtype promotion."""

  def __call__(self, args: Any, /, *, dtype: Dtype | None = None,
               inexact: bool = True) -> Any: ...


@dataclasses.dataclass(frozen=True)
class In(Generic[T]):
  """An axis that applies to a lifted transform's inputs only (``variable_axes``)."""

  axis: T


@dataclasses.dataclass(frozen=True)
class Out(Generic[T]):
  """An axis that applies to a lifted transform's outputs only (``variable_axes``)."""

  axis: T


Axis = int | None
ScanAxis = int
InOutAxis = Axis | In[Axis] | Out[Axis]
InOutScanAxis = ScanAxis | In[ScanAxis] | Out[ScanAxis]


class Key(Hashable, Protocol):
  """A key of a state mapping: hashable and ordered."""

  def __lt__(self, value: Any, /) -> bool: ...


def is_key_like(x: Any) -> bool:
  """Whether ``x`` hashes and orders, as a :class:`Key` does."""
  return hasattr(x, "__hash__") and hasattr(x, "__lt__")


class ShapeDtype(Protocol):
  """Anything with ``shape`` and ``dtype`` (an array, a ``jax.ShapeDtypeStruct``)."""

  shape: Shape
  dtype: Dtype


def has_shape_dtype(x: Any) -> bool:
  """Whether ``x`` has ``shape`` and ``dtype`` attributes."""
  return hasattr(x, "shape") and hasattr(x, "dtype")


@dataclasses.dataclass(frozen=True)
class SizeBytes:
  """A number of elements and the bytes they take (summed by ``+``).

  >>> import numpy as np
  >>> SizeBytes.from_any({"a": np.ones((2, 3), np.float32), "b": np.ones(4, np.int8)})
  SizeBytes(size=10, bytes=28)
  """

  size: int
  bytes: int

  @classmethod
  def from_array(cls, x: ShapeDtype) -> SizeBytes:
    size = int(np.prod(x.shape))
    return cls(size, size * np.dtype(x.dtype).itemsize)

  @classmethod
  def from_any(cls, x: Any) -> SizeBytes:
    total = cls(0, 0)
    for leaf in jax.tree.leaves(x):
      if has_shape_dtype(leaf):
        total = total + cls.from_array(leaf)
    return total

  def __add__(self, other: SizeBytes) -> SizeBytes:
    return SizeBytes(self.size + other.size, self.bytes + other.bytes)

  def __sub__(self, other: SizeBytes) -> SizeBytes:
    return SizeBytes(self.size - other.size, self.bytes - other.bytes)

  def __mul__(self, k: int) -> SizeBytes:
    return SizeBytes(self.size * k, self.bytes * k)


class HashableMapping(Mapping[K, V], Hashable):
  """An immutable mapping that hashes by its items (a static, jit-cacheable dict).

  >>> m = HashableMapping({"b": 2, "a": 1})
  >>> hash(m) == hash(HashableMapping({"a": 1, "b": 2})), m.update({"c": 3})["c"]
  (True, 3)
  """

  def __init__(self, mapping: Mapping[K, V] | Iterator[tuple[K, V]], copy: bool = True):
    self._mapping = dict(mapping) if copy or not isinstance(mapping, dict) else mapping

  def __getitem__(self, key: K) -> V:
    return self._mapping[key]

  def __contains__(self, key: object) -> bool:
    return key in self._mapping

  def __iter__(self) -> Iterator[K]:
    return iter(self._mapping)

  def __len__(self) -> int:
    return len(self._mapping)

  def __hash__(self) -> int:
    return hash(tuple(sorted(self._mapping.items(), key=lambda kv: repr(kv[0]))))

  def __eq__(self, other: object) -> bool:
    return isinstance(other, HashableMapping) and self._mapping == other._mapping

  def __repr__(self) -> str:
    return f"HashableMapping({self._mapping!r})"

  def update(self, other: Mapping[K, V]) -> HashableMapping[K, V]:
    """A new mapping with ``other``'s items added."""
    return HashableMapping({**self._mapping, **other}, copy=False)


class PytreeDeque(collections.deque):
  """A ``collections.deque`` that JAX flattens like a list."""


jax.tree_util.register_pytree_node(
  PytreeDeque, lambda d: (list(d), None), lambda _, xs: PytreeDeque(xs))


class Missing:
  """The type of :data:`MISSING`, the marker of a value that was not given."""

  def __repr__(self) -> str:
    return "MISSING"


MISSING = Missing()


class InitializerProtocol(Protocol):
  """``init(key, shape, dtype) -> array``, the signature of every initializer."""

  def __call__(self, key: PRNGKey, shape: Shape, dtype: Dtype = ...) -> Array: ...


Initializer = InitializerProtocol | Callable[..., Any]
