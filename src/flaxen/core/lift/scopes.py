"""Lifting a scope function ``fn(scope, *args)`` (core's counterpart of Linen's lift.py).

``scope`` may be one :class:`Scope` or a pytree of them (a tuple of a scope and its child,
say). Their variables and fresh rng keys are snapshotted (see ``engine.py``); inside the
transform :func:`body` binds fresh root scopes at the same paths, rebuilds the scope tree
on them, calls ``fn`` and returns ``(y, mutated groups)``; the mutations are written back.
Non-array leaves of the arguments are static: closed over, never handed to JAX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax

from flaxen import errors
from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.engine import (
  DYNAMIC,
  Groups,
  Lift,
  LiftStatic,
  bind_roots,
  cover,
  descend,
  immutable_inside,
  mutated_groups,
  restore_static,
  run,
  static_fields,
  static_positions,
)
from flaxen.core.scope import Scope

__all__ = ["lift_scopes", "body", "ScopeStatic"]


@dataclasses.dataclass(frozen=True)
class ScopeStatic(LiftStatic):
  """A :class:`LiftStatic` that also says where each lifted scope sits."""

  where: tuple[tuple[int, tuple[str, ...]], ...] = ()  # per scope: (root, path below it)
  scope_treedef: Any = None

  def grads_out(self, group: dict[str, tuple[Any, ...]]) -> Any:
    """``{collection: (tree per root)}`` as the caller's scope tree of
    ``{collection: tree}`` dicts (what ``vjp``'s backward function returns)."""
    per_scope = []
    for i, rel in self.where:
      d = {}
      for col, trees in group.items():
        tree = trees[i]
        for name in rel:
          tree = tree.get(name, {}) if isinstance(tree, Mapping) else {}
        d[col] = tree
      per_scope.append(d)
    return jax.tree.unflatten(self.scope_treedef, per_scope)

  def tangents_in(self, user: Any, cols: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """The caller's ``{collection: tree}`` per scope as ``{collection: (tree per root)}``
    (a root takes the dict of the scope that is that root)."""
    per_scope = self.scope_treedef.flatten_up_to(user)
    per_root: list[Any] = [None] * len(self.paths)
    for (i, rel), d in zip(self.where, per_scope, strict=True):
      if not rel and per_root[i] is None:
        per_root[i] = d
    return {col: tuple(d[col] for d in per_root) for col in cols}


def _is_scope(x: Any) -> bool:
  return isinstance(x, Scope)


def lift_scopes(spec: Lift, fn: Callable[..., Any], scope_tree: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
  """Run ``fn(scope_tree, *args, **kwargs)`` under ``spec``'s transform.

  Raises:
    flaxen.errors.LiftScopeError: ``scope_tree`` holds no Scope, or other leaves.
  """
  scopes, scope_treedef = jax.tree.flatten(scope_tree, is_leaf=_is_scope)
  if not scopes or not all(_is_scope(s) for s in scopes):
    raise errors.LiftScopeError(spec.name, scope_tree)
  leaves, treedef = jax.tree.flatten((args, kwargs), is_leaf=lambda x: x is None)
  static_pos = static_positions(args, kwargs, spec)
  dyn: list[Any] = []
  static_leaves: list[tuple[int, Any]] = []
  for i, leaf in enumerate(leaves):
    if i in static_pos or not isinstance(leaf, DYNAMIC):
      static_leaves.append((i, leaf))
      dyn.append(None)
    else:
      dyn.append(leaf)
  roots, where = cover(scopes)
  static = ScopeStatic(**static_fields(spec, fn, roots, treedef, static_leaves),
                       where=tuple(where), scope_treedef=scope_treedef)
  return run(spec, static, roots, body, treedef, dyn)


def body(static: ScopeStatic, variables: Groups, rngs: Groups, args: Any, kwargs: Any,
         mutable: CollectionFilter | None = None,
         fn: Callable[..., Any] | None = None) -> tuple[Any, Groups]:
  """The pure function a transform runs: rebind, call, return ``(y, mutated groups)``.

  ``mutable`` overrides the inner mutability (scan's init pass, a loop's condition); ``fn``
  replaces the called function (a custom_vjp forward pass, a cond branch).
  """
  inner = bind_roots(static, variables, rngs, static.mutable if mutable is None else mutable)
  scopes = [descend(inner[i], rel) for i, rel in static.where]
  scope_tree = jax.tree.unflatten(static.scope_treedef, scopes)
  args, kwargs = restore_static(static, args, kwargs)
  try:
    with immutable_inside(static):
      y = (fn or static.fn)(scope_tree, *args, **kwargs)
  finally:
    for s in inner:
      s.invalidate()
  return y, mutated_groups(inner, static.groups)
