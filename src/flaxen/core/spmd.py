"""Sharding helpers shared by Linen and NNX: logical axis rules and sharding constraints.

Logical axis names ("batch", "embed", "mlp") describe what a dimension means; rules map
them to the axes of a device mesh ("data", "model"), so one model annotation serves many
layouts. The rules live in a per-thread context (``logical_axis_rules``) that Linen and
NNX share. Constraints go through JAX itself: ``jax.lax.with_sharding_constraint`` on
meshes with Auto axes, ``jax.sharding.reshard`` on meshes with Explicit axes (where JAX
treats a constraint as an assertion).

>>> from flaxen.core import spmd
>>> with spmd.logical_axis_rules([("batch", "data"), ("embed", None)]):
...   spmd.logical_to_mesh_axes(("batch", "embed"))
P('data', None)
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from flaxen import errors

__all__ = [
  "LogicalRules", "logical_axis_rules", "set_logical_axis_rules", "get_logical_axis_rules",
  "logical_to_mesh_axes", "assign_mesh_axes", "from_sharding_rules", "UNASSIGNED",
  "active_mesh", "constrain", "check_names", "check_mesh_axes",
]

LogicalRules = Sequence[tuple[str, str | tuple[str, ...] | None]]


class _Unassigned:
  """Marks a dimension that no rule gave a mesh axis (what happens to it is the caller's
  fallback)."""

  def __repr__(self) -> str:
    return "UNASSIGNED"


UNASSIGNED = _Unassigned()


class _Rules(threading.local):
  def __init__(self):
    self.rules: tuple = ()


_rules = _Rules()


def _normalize(rules: LogicalRules) -> tuple:
  out = []
  for rule in rules:
    if not isinstance(rule, tuple | list) or len(rule) != 2:
      raise errors.LogicalAxisRulesError.bad_rule(rule)
    logical, mesh_axes = rule
    out.append((logical, tuple(mesh_axes) if isinstance(mesh_axes, list) else mesh_axes))
  return tuple(out)


def set_logical_axis_rules(rules: LogicalRules) -> None:
  """Set the logical axis rules of this thread (outside any ``logical_axis_rules`` block)."""
  _rules.rules = _normalize(rules)


def get_logical_axis_rules() -> tuple:
  """The logical axis rules in effect: ``((logical_name, mesh_axes), ...)``."""
  return _rules.rules


@contextlib.contextmanager
def logical_axis_rules(rules: LogicalRules):
  """Use ``rules`` (pairs ``(logical_name, mesh_axis | tuple of axes | None)``) inside."""
  old = _rules.rules
  _rules.rules = _normalize(rules)
  try:
    yield
  finally:
    _rules.rules = old


_UNCONSTRAINED = PartitionSpec.UNCONSTRAINED


def _free(mesh_axes: Any, taken: set) -> bool:
  if mesh_axes is None or mesh_axes is _UNCONSTRAINED:
    return True
  axes = mesh_axes if isinstance(mesh_axes, tuple) else (mesh_axes,)
  return not taken.intersection(axes)


def assign_mesh_axes(names: Sequence[str | None], rules: LogicalRules | None = None) -> list:
  """Linen's rule precedence: rules are tried in order; a rule gives its mesh axes to its
  logical name's dimension if that dimension has none yet and no other dimension uses them.
  Dimensions named None get None and dimensions named ``PartitionSpec.UNCONSTRAINED`` keep
  it; the others no rule could assign (all of them when there are no rules) get
  ``UNASSIGNED``. A rule may map a name to None or to ``UNCONSTRAINED``, which take no mesh
  axis.

  Raises:
    flaxen.errors.LogicalAxisRulesError: a logical name is repeated.
  """
  names = tuple(names)
  rules = _rules.rules if rules is None else _normalize(rules)
  dups = tuple(n for n, c in collections.Counter(names).items()
               if c > 1 and isinstance(n, str))
  if dups:
    raise errors.LogicalAxisRulesError.duplicate(names, dups)
  result: list = [n if n is None or n is _UNCONSTRAINED else UNASSIGNED for n in names]
  taken: set = set()
  for logical, mesh_axes in rules:
    if logical not in names:
      continue
    pos = names.index(logical)
    if result[pos] is UNASSIGNED and _free(mesh_axes, taken):
      result[pos] = mesh_axes
      if mesh_axes is not None and mesh_axes is not _UNCONSTRAINED:
        taken.update(mesh_axes if isinstance(mesh_axes, tuple) else (mesh_axes,))
  return result


def logical_to_mesh_axes(array_dim_names: Sequence[str | None] | None,
                         rules: LogicalRules | None = None) -> PartitionSpec | None:
  """The mesh PartitionSpec of an array whose dimensions have logical names ``array_dim_names``
  under ``rules`` (default: the active rules). Dimensions no rule assigns are unsharded."""
  if array_dim_names is None:
    return None
  axes = assign_mesh_axes(array_dim_names, rules)
  return PartitionSpec(*(None if a is UNASSIGNED else a for a in axes))


def from_sharding_rules(names: Sequence[Any], rules: LogicalRules | None = None) -> tuple:
  """NNX's mapping: each name with a rule becomes its mesh axes, any other name is taken to be
  a mesh axis already (so annotations may name mesh axes directly)."""
  table = dict(_rules.rules if rules is None else _normalize(rules))
  return tuple(table.get(n, n) if isinstance(n, str) else n for n in names)


def active_mesh(mesh: Any = None) -> Any:
  """``mesh``, else the mesh set by ``jax.set_mesh`` (abstract inside a trace), else None."""
  if mesh is not None:
    return mesh
  current = jax.sharding.get_abstract_mesh()
  return None if current.empty else current


def _spec_axes(spec: PartitionSpec):
  for entry in spec:
    if entry is None:
      continue
    yield from (entry if isinstance(entry, tuple) else (entry,))


def check_mesh_axes(spec: PartitionSpec, mesh: Any, where: str = "") -> None:
  """Raise :class:`flaxen.errors.UnknownMeshAxisError` if ``spec`` names an axis ``mesh``
  lacks."""
  for axis in _spec_axes(spec):
    if axis not in mesh.axis_names:
      raise errors.UnknownMeshAxisError(axis, spec, tuple(mesh.axis_names), where)


def check_names(names: Sequence[Any], shape: Sequence[int], where: str = "") -> None:
  """Raise :class:`flaxen.errors.ShardingNamesError` when there are more names than
  dimensions (fewer are fine: as in a PartitionSpec, the trailing dimensions are
  unsharded)."""
  if len(names) > len(shape):
    raise errors.ShardingNamesError(tuple(names), tuple(shape), where)


def constrain(x: Any, spec: PartitionSpec, mesh: Any = None, where: str = "") -> Any:
  """``x`` laid out as ``spec`` on ``mesh`` (default: the active mesh; without one, ``x`` as
  is). Works on traced and concrete arrays alike."""
  mesh = active_mesh(mesh)
  if mesh is None or not isinstance(x, jax.Array):
    return x
  check_mesh_axes(spec, mesh, where)
  # Explicit axes take reshard (a constraint there only asserts), Auto ones a constraint;
  # inside shard_map (Manual axes) each device holds its own block and there is no layout.
  types = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))
  used = [types[a] for a in _spec_axes(spec)] or list(types.values())
  if any(t == AxisType.Manual for t in used):
    return x
  explicit = any(t == AxisType.Explicit for t in used)
  target = NamedSharding(mesh, spec) if isinstance(mesh, jax.sharding.Mesh) else spec
  if explicit:
    return jax.sharding.reshard(x, target)
  return jax.lax.with_sharding_constraint(x, target)
