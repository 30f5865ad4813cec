"""Boxed metadata: values wrapped with information about their axes.

An :class:`AxisMetadata` box is a pytree whose only child is the wrapped value, so JAX
transforms see through it, while the box keeps static facts (e.g. sharding axis names).
``param(..., unbox=True)`` hands modules the bare value; the variables keep the box.

>>> import jax.numpy as jnp
>>> from flaxen.core import meta
>>> tree = {"w": meta.Partitioned(jnp.ones((2, 3)), names=("in", "out"))}
>>> meta.unbox(tree)["w"].shape
(2, 3)
>>> meta.get_partition_spec(tree)["w"]
P('in', 'out')
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import jax

from flaxen import errors, struct
from flaxen.core import spmd

__all__ = [
  "AxisMetadata", "Partitioned", "unbox", "replace_boxed", "add_axis", "remove_axis",
  "is_axis_metadata", "with_partitioning", "get_partition_spec", "get_sharding",
  "PARTITION_NAME", "map_axis_meta", "get_global_mesh", "global_mesh_defined",
]

T = TypeVar("T")
PARTITION_NAME = "partition_name"  # metadata_params key: the axis name a transform adds


class AxisMetadata(Generic[T], metaclass=abc.ABCMeta):
  """Abstract base of boxed values; subclasses say how their metadata follows transforms.

  As in Flax, a box is usually ``class Box(struct.PyTreeNode, AxisMetadata)``; a subclass
  of ``AxisMetadata`` alone is made a struct dataclass too.
  """

  def __init_subclass__(cls, **kwargs: Any):
    super().__init_subclass__()
    if not issubclass(cls, struct.PyTreeNode):
      struct.dataclass(cls, **kwargs)

  @abc.abstractmethod
  def unbox(self) -> T:
    """The wrapped value without its metadata."""

  @abc.abstractmethod
  def replace_boxed(self, val: T) -> AxisMetadata[T]:
    """A box with the same metadata around ``val``."""

  @abc.abstractmethod
  def add_axis(self, index: int, params: dict[str, Any]) -> AxisMetadata[T]:
    """The metadata after a lifted transform (vmap, scan) inserts an axis at ``index``."""

  @abc.abstractmethod
  def remove_axis(self, index: int, params: dict[str, Any]) -> AxisMetadata[T]:
    """The metadata after a lifted transform removes the axis at ``index``."""


def is_axis_metadata(val: Any) -> bool:
  """Whether ``val`` is a box (:class:`AxisMetadata`)."""
  return isinstance(val, AxisMetadata)


def map_axis_meta(fn: Callable[[AxisMetadata], Any], tree: Any) -> Any:
  """``fn(box)`` for every box in ``tree``; other leaves are kept."""
  return jax.tree.map(lambda x: fn(x) if isinstance(x, AxisMetadata) else x, tree,
                      is_leaf=is_axis_metadata)


def get_global_mesh() -> Any:
  """The mesh set with ``jax.set_mesh`` (or a ``with mesh:`` block), or None."""
  return spmd.active_mesh()


def global_mesh_defined() -> bool:
  """Whether a mesh is set (see :func:`get_global_mesh`)."""
  return get_global_mesh() is not None


def unbox(tree: Any) -> Any:
  """Replace every box in ``tree`` by its value."""
  return jax.tree.map(lambda x: x.unbox() if isinstance(x, AxisMetadata) else x, tree,
                      is_leaf=is_axis_metadata)


def replace_boxed(tree: Any, updates: Any) -> Any:
  """Put the leaves of ``updates`` into the boxes of ``tree`` (same structure, unboxed)."""

  def put(box, value):
    return box.replace_boxed(value) if isinstance(box, AxisMetadata) else value

  return jax.tree.map(put, tree, updates, is_leaf=is_axis_metadata)


def add_axis(tree: Any, index: int, params: dict[str, Any]) -> Any:
  """Call ``add_axis`` on every box in ``tree``."""
  return jax.tree.map(lambda x: x.add_axis(index, params) if isinstance(x, AxisMetadata) else x,
                      tree, is_leaf=is_axis_metadata)


def remove_axis(tree: Any, index: int, params: dict[str, Any]) -> Any:
  """Call ``remove_axis`` on every box in ``tree``."""
  return jax.tree.map(
    lambda x: x.remove_axis(index, params) if isinstance(x, AxisMetadata) else x,
    tree, is_leaf=is_axis_metadata,
  )


class Partitioned(struct.PyTreeNode, AxisMetadata[T]):
  """A value with one logical mesh-axis name (or None) per dimension."""

  value: Any
  names: tuple[str | None, ...] = struct.field(pytree_node=False)
  mesh: Any = struct.field(default=None, pytree_node=False)

  def unbox(self, apply_constraint: bool = True) -> Any:
    """The value; under a mesh (``self.mesh`` or ``jax.set_mesh``) constrained to its spec,
    so that the value a module computes with is laid out as annotated."""
    # A rank other than the names' is an initializer's flat intermediate (DenseGeneral
    # reshapes it); the final param is checked where its sharding is asked for.
    if (apply_constraint and spmd.active_mesh(self.mesh) is not None
        and jax.numpy.ndim(self.value) == len(self.names)):
      return spmd.constrain(self.value, self.get_partition_spec(), self.mesh)
    return self.value

  def replace_boxed(self, val: Any) -> Partitioned:
    return self.replace(value=val)

  def _partition_name(self, params: dict[str, Any]) -> str | None:
    # A transform that maps an axis must say how that axis is sharded (None: not at all).
    if PARTITION_NAME not in params:
      raise errors.PartitioningUnspecifiedError(self)
    return params[PARTITION_NAME]

  def add_axis(self, index: int, params: dict[str, Any]) -> Partitioned:
    names = list(self.names)
    names.extend([None] * (index - len(names)))  # a rank-0 box mapped at a later axis
    names.insert(index, self._partition_name(params))
    return self.replace(names=tuple(names))

  def remove_axis(self, index: int, params: dict[str, Any]) -> Partitioned:
    self._partition_name(params)
    names = list(self.names)
    names.pop(index)
    return self.replace(names=tuple(names))

  def get_partition_spec(self) -> jax.sharding.PartitionSpec:
    return jax.sharding.PartitionSpec(*self.names)

  def to_nnx_metadata(self) -> dict[str, Any]:
    """The NNX Variable metadata for this box (``sharding_names``, ``mesh``)."""
    return {"sharding_names": self.names, "mesh": self.mesh}

  @classmethod
  def from_nnx_metadata(cls, metadata: dict[str, Any]) -> Partitioned:
    """A box from NNX Variable metadata: ``value`` and its ``sharding_names``."""
    vs = metadata
    names = vs.get("sharding_names", vs.get("sharding", vs.get("out_sharding")))
    return cls(vs["value"], tuple(names) if names is not None else (), vs.get("mesh"))

  def get_sharding(self, mesh: Any) -> jax.sharding.NamedSharding:
    """The ``NamedSharding`` of this value on ``mesh``."""
    self.check_names()
    spec = self.get_partition_spec()
    spmd.check_mesh_axes(spec, mesh)
    return jax.sharding.NamedSharding(mesh, spec)

  def check_names(self) -> None:
    """Raise :class:`flaxen.errors.ShardingNamesError` when there are more names than
    dimensions."""
    if hasattr(self.value, "shape"):
      spmd.check_names(self.names, self.value.shape)


def with_partitioning(fn, names: tuple[str | None, ...], mesh: Any = None):
  """Wrap initializer ``fn`` so that its result is boxed as :class:`Partitioned`."""
  names = tuple(names)

  def init(*args, **kwargs):
    return Partitioned(fn(*args, **kwargs), names, mesh)

  return init


def get_partition_spec(tree: Any) -> Any:
  """The PartitionSpec of every leaf: from its box, fully replicated for bare arrays (None for
  leaves without a shape)."""

  def spec(x):
    if isinstance(x, Partitioned):
      x.check_names()
      return x.get_partition_spec()
    if is_axis_metadata(x) and hasattr(x, "get_partition_spec"):  # e.g. nnx.bridge.NNXMeta
      return x.get_partition_spec()
    return jax.sharding.PartitionSpec() if hasattr(x, "shape") else None

  return jax.tree.map(spec, tree, is_leaf=is_axis_metadata)


def get_sharding(tree: Any, mesh: Any) -> Any:
  """The ``NamedSharding`` on ``mesh`` of every leaf: from its box, replicated for bare arrays
  (None for leaves without a shape)."""

  def sharding(x):
    if isinstance(x, Partitioned):
      return x.get_sharding(mesh)
    if hasattr(x, "shape"):
      return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return None

  return jax.tree.map(sharding, tree, is_leaf=is_axis_metadata)
