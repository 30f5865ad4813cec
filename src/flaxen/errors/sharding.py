"""Errors of sharding annotations: axis names, logical axis rules and meshes."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError, names

__all__ = [
  "ShardingNamesError", "LogicalAxisRulesError", "UnknownMeshAxisError",
  "PartitioningUnspecifiedError",
]


def _at(where: str) -> str:
  return f" for {where}" if where else ""


class ShardingNamesError(FlaxenError, ValueError):
  """A value has more sharding names than dimensions."""

  def __init__(self, names_: tuple, shape: tuple, where: str = ""):
    super().__init__(
      f"Sharding names {tuple(names_)!r}{_at(where)} have {len(names_)} entries, but the "
      f"value has shape {tuple(shape)} ({len(shape)} dimensions). Fix: give one axis name "
      "(or None for an unsharded dimension) per dimension of the value, at most."
    )


class LogicalAxisRulesError(FlaxenError, ValueError):
  """Logical axis names could not be mapped to mesh axes with the given rules."""

  @classmethod
  def no_rules(cls, names_: tuple, where: str = "") -> LogicalAxisRulesError:
    return cls(
      f"Logical axis names {tuple(names_)!r}{_at(where)} were converted to mesh axes, but no "
      "logical axis rules are set. Fix: wrap the call in `with nn.logical_axis_rules(rules):` "
      "(or nn.set_logical_axis_rules(rules)), or pass rules=..., where rules is a sequence of "
      "(logical_name, mesh_axis_or_None) pairs."
    )

  @classmethod
  def duplicate(cls, names_: tuple, dups: tuple) -> LogicalAxisRulesError:
    return cls(
      f"Logical axis names {tuple(names_)!r} use {names(dups)} more than once; a dimension "
      "name may appear only once per array. Fix: give each dimension its own logical name."
    )

  @classmethod
  def bad_rule(cls, rule: object) -> LogicalAxisRulesError:
    return cls(
      f"Logical axis rule {rule!r} is not a (logical_name, mesh_axes) pair. Fix: write rules "
      "as a sequence of pairs such as (('batch', 'data'), ('embed', None))."
    )

  @classmethod
  def unassigned(cls, names_: tuple, missing: tuple, rules: tuple) -> LogicalAxisRulesError:
    return cls(
      f"No logical axis rule assigns a mesh axis to {names(missing)} (names {tuple(names_)!r}, "
      f"rules {rules!r}) and fallback=RulesFallback.RAISE_ERROR. Fix: add a rule "
      "(name, mesh_axis) or (name, None) for it, or use another fallback."
    )


class UnknownMeshAxisError(FlaxenError, ValueError):
  """A partition spec names an axis that the mesh does not have."""

  def __init__(self, axis: object, spec: object, mesh_axes: tuple, where: str = ""):
    super().__init__(
      f"Partition spec {spec}{_at(where)} uses mesh axis {axis!r}, but the mesh has axes "
      f"{names(mesh_axes)}. Fix: name one of the mesh's axes, or map the logical name "
      f"{axis!r} to one with a rule in nn.logical_axis_rules / the 'sharding_rules' metadata."
    )


class PartitioningUnspecifiedError(FlaxenError, ValueError):
  """A lifted transform (``nn.vmap``, ``nn.scan``) added or removed an axis of a
  ``Partitioned`` variable without naming that axis in ``metadata_params``.

  Args:
    target: the boxed variable.
  """

  def __init__(self, target: object):
    names_ = getattr(target, "names", None)
    super().__init__(
      f"A lifted transform maps an axis of a Partitioned variable (names {names_}), but "
      "its metadata_params do not name the new axis. Fix: pass "
      "metadata_params={nn.PARTITION_NAME: 'layers'} (or None for an unsharded axis) to "
      "the transform."
    )
