"""The older Linen partitioning API: params stay bare, their logical axes go to a side
collection (``params_axes``) that ``get_axis_names`` turns into PartitionSpecs.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> from flaxen.linen import partitioning as nn_partitioning
>>> class Scale(nn.Module):
...   @nn.compact
...   def __call__(self, x):
...     w = nn_partitioning.param_with_axes("w", nn.initializers.ones, (x.shape[-1],),
...                                         axes=("embed",))
...     return x * w
>>> variables = Scale().init(jax.random.key(0), jnp.ones((1, 3)))
>>> nn_partitioning.get_axis_names(variables["params_axes"])
{'w': P('embed',)}
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import PartitionSpec

from flaxen import errors, struct, traverse_util
from flaxen.core.filters import CollectionFilter
from flaxen.core.scope import Variable
from flaxen.linen.spmd import (
  LogicallyPartitioned,
  RulesFallback,
  get_logical_axis_rules,
  get_sharding,
  logical_axis_rules,
  logical_to_mesh,
  logical_to_mesh_axes,
  logical_to_mesh_sharding,
  set_logical_axis_rules,
  with_logical_constraint,
  with_logical_partitioning,
)
from flaxen.linen.wrapping import ctx
from flaxen.typing import ArrayPytree, LogicalPartitionSpec, LogicalRules, PartitionSpecPytree
from flaxen.typing import In as ScanIn
from flaxen.typing import Out as ScanOut

__all__ = [
  "AxisMetadata", "PartitionedVariable", "param_with_axes", "variable_with_axes",
  "get_axis_names", "axis_rules",
  "get_axis_rules", "set_axis_rules", "with_sharding_constraint", "logical_to_mesh_axes",
  "logical_to_mesh", "logical_to_mesh_sharding", "with_logical_constraint",
  "with_logical_partitioning", "LogicallyPartitioned", "RulesFallback", "get_sharding",
  "logical_axis_rules", "get_logical_axis_rules", "set_logical_axis_rules", "scan_with_axes",
  "vmap_with_axes", "remat", "core_remat_static", "ScanIn", "ScanOut", "ArrayPytree",
  "CollectionFilter", "PRNGSequenceFilter", "LogicalPartitionSpec", "LogicalRules",
  "PartitionSpecPytree",
]

PRNGSequenceFilter = CollectionFilter  # rng streams are filtered like collections

# This module's names for the shared rules context and the logical constraint.
axis_rules = logical_axis_rules
get_axis_rules = get_logical_axis_rules
set_axis_rules = set_logical_axis_rules
with_sharding_constraint = with_logical_constraint


@struct.dataclass
class AxisMetadata:
  """The logical axis names of one variable, stored in the ``<collection>_axes`` collection."""

  names: tuple = struct.field(pytree_node=False)


def _keep_same(previous: Any, new: AxisMetadata) -> AxisMetadata:
  if isinstance(previous, AxisMetadata) and previous != new:
    raise errors.LogicalAxisRulesError(
      f"A variable was given logical axes {new.names!r} after {previous.names!r}. Fix: "
      "annotate each variable with the same axes every time it is read."
    )
  return new


def _current(module: Any) -> Any:
  return module if module is not None else ctx.stack[-1]


def param_with_axes(name: str, init_fn: Any, *init_args: Any, axes: tuple | None = None,
                    module: Any = None, **init_kwargs: Any) -> Any:
  """``module.param`` (default: the module whose method is running) that also records
  ``axes`` in ``params_axes`` and constrains the value to them under a mesh."""
  module = _current(module)
  value = module.param(name, init_fn, *init_args, **init_kwargs)
  if axes is not None:
    if isinstance(axes, list | tuple):  # a pytree of axes (for a pytree param) is kept as is
      axes = tuple(axes)
      value = with_logical_constraint(value, PartitionSpec(*axes))
    module.sow("params_axes", f"{name}_axes", AxisMetadata(axes), reduce_fn=_keep_same)
  return value


class PartitionedVariable(Variable):
  """A :class:`~flaxen.linen.Variable` whose value is constrained to its logical ``axes``
  (under a mesh and axis rules) each time it is read or written.

  Args:
    scope: the scope that holds the variable.
    collection: its collection.
    name: its name.
    axes: one logical axis name (or None) per dimension; None: no constraint.
    fallback: what to do with a logical name that the rules do not map.
  """

  __slots__ = ("axes", "fallback")

  def __init__(self, scope: Any, collection: str, name: str, axes: tuple | None = None,
               fallback: RulesFallback = RulesFallback.AXIS_IS_UNSHARDED):
    super().__init__(scope, collection, name)
    self.axes = axes
    self.fallback = fallback

  def _constrain(self, value: Any) -> Any:
    if self.axes is None:
      return value
    return with_logical_constraint(value, PartitionSpec(*self.axes), fallback=self.fallback)

  @property
  def value(self) -> Any:
    return self._constrain(Variable.value.fget(self))  # type: ignore[attr-defined]

  @value.setter
  def value(self, value: Any) -> None:
    Variable.value.fset(self, self._constrain(value))  # type: ignore[attr-defined]


def variable_with_axes(collection: str, name: str, init_fn: Any = None, *init_args: Any,
                       axes: tuple | None = None, module: Any = None,
                       fallback: RulesFallback = RulesFallback.AXIS_IS_UNSHARDED,
                       **init_kwargs: Any) -> Any:
  """``module.variable`` that also records ``axes`` in ``<collection>_axes``; under a mesh,
  the returned :class:`PartitionedVariable` constrains the value to them."""
  module = _current(module)
  var = module.variable(collection, name, init_fn, *init_args, **init_kwargs)
  if axes is None:
    return var
  if isinstance(axes, list | tuple):
    axes = tuple(axes)
    var = PartitionedVariable(var.scope, collection, name, axes, fallback)
    if module.is_mutable_collection(collection):
      var.value = var.value  # the stored value carries the constraint too
  module.sow(f"{collection}_axes", f"{name}_axes", AxisMetadata(axes), reduce_fn=_keep_same)
  return var


def get_axis_names(axes_metadata: Any) -> Any:
  """``{..., "w": PartitionSpec(*axes)}`` from a ``params_axes``-style collection."""
  flat = traverse_util.flatten_dict(dict(axes_metadata))
  specs = {}
  for path, meta in flat.items():
    if not isinstance(meta, AxisMetadata):
      continue
    specs[(*path[:-1], path[-1].removesuffix("_axes"))] = jax.tree.map(
      lambda names: PartitionSpec(*names), meta.names, is_leaf=_is_names)
  return traverse_util.unflatten_dict(specs)


def _is_names(x: Any) -> bool:
  """One array's axis names (a tuple of str / None), not a pytree of them."""
  return isinstance(x, tuple) and all(n is None or isinstance(n, str) for n in x)


from flaxen.linen.partitioning_transforms import (  # noqa: E402 (they read AxisMetadata)
  core_remat_static,
  remat,
  scan_with_axes,
  vmap_with_axes,
)
