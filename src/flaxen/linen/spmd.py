"""Linen sharding with logical axis names.

A model annotates its params with logical names (``with_logical_partitioning``); the
training program picks the layout with rules (``logical_axis_rules``) and a mesh:

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> init = nn.with_logical_partitioning(nn.initializers.ones, ("embed", "mlp"))
>>> dense = nn.Dense(4, kernel_init=init)
>>> abstract = jax.eval_shape(dense.init, jax.random.key(0), jnp.ones((1, 2)))
>>> specs = nn.get_partition_spec(abstract)
>>> specs["params"]["kernel"]
P('embed', 'mlp')
>>> nn.logical_to_mesh(specs, [("embed", None), ("mlp", "model")])["params"]["kernel"]
P(None, 'model')

``jax.jit(dense.init, out_shardings=nn.logical_to_mesh_sharding(specs, mesh, rules))`` then
creates every param directly in its shards.
"""

from __future__ import annotations

import enum
from typing import Any

import jax
from jax.sharding import NamedSharding, PartitionSpec

from flaxen import errors, struct
from flaxen.core import meta, spmd
from flaxen.core.spmd import (
  get_logical_axis_rules,
  logical_axis_rules,
  logical_to_mesh_axes,
  set_logical_axis_rules,
)

__all__ = [
  "LogicallyPartitioned", "RulesFallback", "with_logical_partitioning",
  "with_logical_constraint", "logical_to_mesh", "logical_to_mesh_sharding",
  "logical_to_mesh_axes", "logical_axis_rules", "get_logical_axis_rules",
  "set_logical_axis_rules", "get_sharding",
]

get_sharding = meta.get_sharding


class RulesFallback(enum.Enum):
  """What ``with_logical_constraint`` does with a dimension that no rule assigns."""

  AXIS_IS_UNSHARDED = "axis_is_unsharded"
  RAISE_ERROR = "raise_error"
  NO_CONSTRAINT = "no_constraint"


def _is_spec(x: Any) -> bool:
  return isinstance(x, PartitionSpec)


def logical_to_mesh(tree: Any, rules: spmd.LogicalRules | None = None) -> Any:
  """Map every logical PartitionSpec in ``tree`` to its mesh PartitionSpec."""
  return jax.tree.map(lambda s: logical_to_mesh_axes(s, rules), tree, is_leaf=_is_spec)


def logical_to_mesh_sharding(tree: Any, mesh: jax.sharding.Mesh,
                             rules: spmd.LogicalRules | None = None) -> Any:
  """Map every logical PartitionSpec in ``tree`` to a ``NamedSharding`` on ``mesh``."""

  def sharding(spec):
    spec = logical_to_mesh_axes(spec, rules)
    spmd.check_mesh_axes(spec, mesh)
    return NamedSharding(mesh, spec)

  return jax.tree.map(sharding, tree, is_leaf=_is_spec)


def _constrain_one(x: Any, names: Any, rules: Any, mesh: Any, fallback: RulesFallback) -> Any:
  if names is None:
    return x
  axes = spmd.assign_mesh_axes(names, rules)
  missing = tuple(n for n, a in zip(names, axes, strict=True) if a is spmd.UNASSIGNED)
  if missing:
    if fallback is RulesFallback.NO_CONSTRAINT:
      return x
    if fallback is RulesFallback.RAISE_ERROR:
      rules = spmd.get_logical_axis_rules() if rules is None else rules
      raise errors.LogicalAxisRulesError.unassigned(tuple(names), missing, tuple(rules))
  spec = PartitionSpec(*(None if a is spmd.UNASSIGNED else a for a in axes))
  return spmd.constrain(x, spec, mesh)


def with_logical_constraint(x: Any, logical_axis_resources: Any,
                            rules: spmd.LogicalRules | None = None, mesh: Any = None,
                            fallback: RulesFallback = RulesFallback.AXIS_IS_UNSHARDED) -> Any:
  """``jax.lax.with_sharding_constraint`` in logical axis names.

  ``x`` is an array or a pytree of arrays (boxes are unboxed); ``logical_axis_resources`` a
  PartitionSpec / tuple of logical names, or a matching tree of them. Without a mesh (none
  given, none set with ``jax.set_mesh``) ``x`` is returned unchanged, so single-device code
  runs as is.
  """
  x = meta.unbox(x)
  if spmd.active_mesh(mesh) is None:
    return x
  if _is_names(logical_axis_resources):
    names = tuple(logical_axis_resources)
    return jax.tree.map(lambda v: _constrain_one(v, names, rules, mesh, fallback), x)
  return jax.tree.map(
    lambda names, v: _constrain_one(v, None if names is None else tuple(names), rules, mesh,
                                    fallback),
    logical_axis_resources, x, is_leaf=lambda n: n is None or _is_names(n))


def _is_names(x: Any) -> bool:
  """A PartitionSpec or a tuple of names: the names of one array's dimensions."""
  return _is_spec(x) or (isinstance(x, tuple) and all(n is None or isinstance(n, str)
                                                      for n in x))


class LogicallyPartitioned(meta.Partitioned):
  """A value whose dimensions have logical axis names, mapped to mesh axes by ``rules`` (or
  the active rules). ``get_partition_spec`` gives the logical names; ``get_sharding`` maps
  them."""

  rules: Any = struct.field(default=None, pytree_node=False)

  def unbox(self, apply_constraint: bool = True) -> Any:
    if (apply_constraint and spmd.active_mesh(self.mesh) is not None
        and jax.numpy.ndim(self.value) == len(self.names)):
      return with_logical_constraint(self.value, self.get_partition_spec(), self.rules,
                                     self.mesh)
    return self.value

  def get_sharding(self, mesh: Any) -> NamedSharding:
    self.check_names()
    spec = logical_to_mesh_axes(self.names, self.rules)
    spmd.check_mesh_axes(spec, mesh)
    return NamedSharding(mesh, spec)

  def to_nnx_metadata(self) -> dict[str, Any]:
    """NNX Variable metadata: the logical names and their ``sharding_rules``."""
    return {**super().to_nnx_metadata(), "sharding_rules": self.rules}

  @classmethod
  def from_nnx_metadata(cls, metadata: dict[str, Any]) -> LogicallyPartitioned:
    box = super().from_nnx_metadata(metadata)
    return box.replace(rules=metadata.get("sharding_rules"))


def with_logical_partitioning(fn: Any, names: tuple[str | None, ...], mesh: Any = None,
                              rules: spmd.LogicalRules | None = None):
  """Wrap initializer ``fn`` so that its result is boxed as :class:`LogicallyPartitioned`."""
  names = tuple(names)
  rules = None if rules is None else tuple(tuple(r) for r in rules)

  def init(*args, **kwargs):
    return LogicallyPartitioned(fn(*args, **kwargs), names, mesh, rules)

  return init
