"""Linen collection names <-> NNX Variable types, the dictionary both bridge directions use
(the registry itself is :mod:`flaxen.nnx.variable_names`, re-exported here).

The built-in pairs are ``'params'`` <-> ``Param``, ``'batch_stats'`` <-> ``BatchStat``,
``'cache'`` <-> ``Cache``, ``'intermediates'`` <-> ``Intermediate`` and ``'perturbations'``
<-> ``Perturbation``. Any other collection name gets a generated ``Variable`` subclass of
that name (registered on first use), and an unregistered Variable type gets its class name
as its collection.

>>> from flaxen import nnx
>>> from flaxen.nnx import bridge
>>> bridge.variable_type_from_name("batch_stats") is nnx.BatchStat
True
>>> counter = bridge.variable_type_from_name("counter", allow_register=True)
>>> issubclass(counter, nnx.Variable), bridge.variable_name_from_type(counter)
(True, 'counter')
"""

from __future__ import annotations

from typing import Any

import jax

from flaxen import struct
from flaxen.core import meta
from flaxen.nnx.spmd import sharding_names
from flaxen.nnx.variable_names import (
  register_variable_name,
  register_variable_name_type_pair,
  variable_name_from_type,
  variable_type_from_name,
)
from flaxen.nnx.variables import Variable

__all__ = [
  "register_variable_name", "register_variable_name_type_pair", "variable_type_from_name",
  "variable_name_from_type", "to_linen_var", "to_nnx_var", "NNXMeta", "with_partitioning",
]

_SHARDING_KEYS = ("sharding_names", "sharding", "out_sharding")


def _flax_metadata(var: Variable) -> dict[str, Any]:
  """``var``'s metadata with its axis names under Flax 0.12's key, ``out_sharding``."""
  metadata = {k: v for k, v in var.get_metadata().items()
              if k not in _SHARDING_KEYS and k != "linen_box"}
  names = sharding_names(var.get_metadata())
  if names is not None:
    metadata["out_sharding"] = tuple(names)
  return metadata


class NNXMeta(struct.PyTreeNode, meta.AxisMetadata):
  """The Linen box of an NNX Variable that has metadata: its type, value and metadata, so
  ``ToNNX`` (or ``to_nnx_variable``) can rebuild the same Variable and Linen's
  ``get_partition_spec`` reads its ``out_sharding``.

  Attributes:
    var_type: the Variable type.
    value: the value.
    metadata: the Variable's metadata (axis names under ``out_sharding``).
  """

  var_type: type = struct.field(pytree_node=False)
  value: Any
  metadata: dict = struct.field(pytree_node=False)

  def unbox(self) -> Any:
    return self.value

  def replace_boxed(self, val: Any) -> NNXMeta:
    return self.replace(value=val)

  def _names(self, change: Any) -> NNXMeta:
    names = self.metadata.get("out_sharding")
    if names is None:
      return self
    names = list(names)
    change(names)
    return self.replace(metadata={**self.metadata, "out_sharding": tuple(names)})

  def add_axis(self, index: int, params: dict[str, Any]) -> NNXMeta:
    return self._names(lambda names: names.insert(index, params.get(meta.PARTITION_NAME)))

  def remove_axis(self, index: int, params: dict[str, Any]) -> NNXMeta:
    return self._names(lambda names: names.pop(index))

  def get_partition_spec(self) -> jax.sharding.PartitionSpec:
    names = self.metadata.get("out_sharding")
    return jax.sharding.PartitionSpec(*names) if names is not None else (
      jax.sharding.PartitionSpec())

  def to_nnx_variable(self) -> Variable:
    """The NNX Variable this box stands for."""
    return self.var_type(self.value, **self.metadata)


def with_partitioning(fn: Any, names: tuple, mesh: Any = None) -> Any:
  """Wraps initializer ``fn`` so its result is an ``NNXMeta`` box of a ``Param`` with
  ``names`` as its axis names (what ``to_linen`` stores for such a param)."""
  from flaxen.nnx.variables import Param

  def init(*args: Any, **kwargs: Any) -> NNXMeta:
    metadata = {"out_sharding": tuple(names)} | ({"mesh": mesh} if mesh is not None else {})
    return NNXMeta(Param, fn(*args, **kwargs), metadata)

  return init


def to_linen_var(var: Variable) -> Any:
  """The value a Linen collection holds for NNX Variable ``var``: its value, boxed back into
  the Linen metadata box it came from (``ToNNX``), or in an ``NNXMeta`` box when it has
  other metadata."""
  box = var._meta.get("linen_box")
  if box is not None:
    return box.replace_boxed(var.value)
  metadata = _flax_metadata(var)
  if metadata:
    return NNXMeta(type(var), var.value, metadata)
  return var.value


def to_nnx_var(col: str, value: Any) -> Variable:
  """The NNX Variable for ``value`` of Linen collection ``col``: an ``NNXMeta`` box gives
  back its Variable; another Linen box is kept (without its value) to rebuild it, its axis
  names and rules becoming metadata."""
  typ = variable_type_from_name(col, allow_register=True)
  if isinstance(value, NNXMeta):
    return value.to_nnx_variable()
  if meta.is_axis_metadata(value):
    extra = {}
    if getattr(value, "names", None) is not None:
      extra["out_sharding"] = tuple(value.names)
    if getattr(value, "rules", None) is not None:
      extra["sharding_rules"] = tuple(value.rules)
    # the raw value: a constraint to logical names needs the rules, applied by the Variable
    raw = value.unbox(apply_constraint=False) if isinstance(value, meta.Partitioned) else (
      value.unbox())
    return typ(raw, linen_box=value.replace_boxed(None), **extra)
  return typ(value)
