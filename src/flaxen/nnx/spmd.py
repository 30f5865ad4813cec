"""NNX sharding: Variables carry their axis names as metadata (``sharding_names``; Flax's
older spelling ``sharding`` and newer ``out_sharding`` are read too).

Names map to mesh axes through ``sharding_rules`` metadata or the active
``logical_axis_rules`` (shared with Linen); a name without a rule is a mesh axis itself.
A Variable created under a mesh (``jax.set_mesh``, or a ``mesh`` in its metadata) is laid
out as annotated at once; inside ``nnx.jit`` that makes every param born in its shards.
``eager_sharding=False`` metadata opts a Variable out.

>>> import jax, jax.numpy as jnp
>>> from flaxen import nnx
>>> model = nnx.Linear(2, 4, rngs=nnx.Rngs(0),
...                    kernel_init=nnx.with_partitioning(nnx.initializers.ones, (None, "model")))
>>> nnx.get_partition_spec(nnx.state(model))["kernel"].value
P(None, 'model')
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import NamedSharding, PartitionSpec

from flaxen.core import spmd
from flaxen.nnx.variables import Variable, with_metadata

__all__ = [
  "with_partitioning", "get_partition_spec", "get_named_sharding", "with_sharding_constraint",
  "sharding_names", "variable_spec", "shard_new_value", "PARTITION_NAME",
]

_KEYS = ("sharding_names", "sharding", "out_sharding")
PARTITION_NAME = "partition_name"  # transform_metadata key: a mapped axis' sharding name


def sharding_names(meta: dict[str, Any]) -> tuple | None:
  """The axis names in a Variable's metadata dict, under any of Flax's spellings."""
  for key in _KEYS:
    names = meta.get(key)
    if isinstance(names, tuple | list | PartitionSpec):
      return tuple(names)
  return None


def variable_spec(value: Any, meta: dict[str, Any], where: str = "") -> PartitionSpec:
  """The mesh PartitionSpec of a Variable's value: its names through its ``sharding_rules``
  (or the active rules); replicated without names."""
  names = sharding_names(meta)
  if names is None:
    return PartitionSpec()
  if hasattr(value, "shape"):
    spmd.check_names(names, value.shape, where)
  rules = meta.get("sharding_rules")
  if rules is not None:  # the Variable's own rules first, then the active ones
    rules = (*spmd.get_logical_axis_rules(), *rules)  # later entries win in the table
  return PartitionSpec(*spmd.from_sharding_rules(names, rules))


def shard_new_value(value: Any, meta: dict[str, Any]) -> Any:
  """A new Variable's value, laid out as its annotation says when a mesh is active (or as
  the ``NamedSharding`` / ``Format`` given as its ``out_sharding``)."""
  target = meta.get("out_sharding")
  target = getattr(target, "sharding", target)  # a jax Format: its sharding
  if isinstance(target, NamedSharding) and isinstance(value, jax.Array):
    if meta.get("eager_sharding") is False or not _eager_default():
      return value
    return spmd.constrain(value, target.spec, target.mesh)
  mesh = spmd.active_mesh(meta.get("mesh"))
  if mesh is None or not isinstance(value, jax.Array):
    return value
  eager = meta.get("eager_sharding")
  if eager is False or (eager is None and not _eager_default()):
    return value
  if sharding_names(meta) is None:
    return value
  return spmd.constrain(value, variable_spec(value, meta), mesh)


def _eager_default() -> bool:
  from flaxen.nnx.abstract import using_eager_sharding  # abstract imports this module
  return using_eager_sharding()


def with_partitioning(initializer: Any, sharding: tuple, mesh: Any = None, **metadata: Any):
  """Wrap ``initializer`` so that the Variable built from its result has the metadata
  ``sharding_names=sharding`` (plus ``mesh`` and ``metadata``)."""
  return with_metadata(initializer, sharding_names=tuple(sharding), mesh=mesh, **metadata)


def _is_variable(x: Any) -> bool:
  return isinstance(x, Variable)


def _where(path: tuple) -> str:
  return "variable " + "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def get_partition_spec(tree: Any) -> Any:
  """``tree`` (a State, Variables, arrays) with each Variable's value replaced by its mesh
  PartitionSpec, each bare array's by ``PartitionSpec()`` (leaves without a shape: None)."""

  def spec(path, x):
    if isinstance(x, Variable):
      return type(x)._from_raw(variable_spec(x.raw_value, x._meta, _where(path)), dict(x._meta))
    return PartitionSpec() if hasattr(x, "shape") else None

  return jax.tree_util.tree_map_with_path(spec, tree, is_leaf=_is_variable)


def get_named_sharding(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """Like :func:`get_partition_spec`, with ``NamedSharding(mesh, spec)`` in place of each
  spec: the ``out_shardings`` / ``device_put`` target of a model's state.

  Raises:
    flaxen.errors.UnknownMeshAxisError: a spec names an axis ``mesh`` does not have.
  """

  def sharding(path, spec):
    spmd.check_mesh_axes(spec, mesh, _where(path[:-1]))
    return NamedSharding(mesh, spec)

  return jax.tree_util.tree_map_with_path(
    sharding, get_partition_spec(tree), is_leaf=lambda x: isinstance(x, PartitionSpec))


def with_sharding_constraint(x: Any, axis_resources: Any, mesh: Any = None) -> Any:
  """``jax.lax.with_sharding_constraint`` that also works on meshes with Explicit axes and
  returns ``x`` unchanged when there is no mesh (none given, none set).

  ``axis_resources``: one PartitionSpec or Sharding for every array of ``x``, or a tree of
  them matching ``x`` (e.g. from :func:`get_partition_spec`).
  """
  if spmd.active_mesh(mesh) is None and not isinstance(axis_resources, NamedSharding):
    return x

  def one(spec, value):
    if isinstance(spec, NamedSharding):
      return spmd.constrain(value, spec.spec, spec.mesh)
    return spmd.constrain(value, spec, mesh)

  if isinstance(axis_resources, PartitionSpec | NamedSharding):
    return jax.tree.map(lambda v: one(axis_resources, v), x)
  return jax.tree.map(one, axis_resources, x,
                      is_leaf=lambda s: isinstance(s, PartitionSpec | NamedSharding))
