"""What every lifted transform shares, Linen's (of Modules) and core's (of scope functions).

A lifted call snapshots the variables and fresh rng keys of the scopes it touches, grouped
per collection filter (``{collection: (subtree per scope, ...)}``, one dict per group), runs
a pure ``body(variables, rngs, args, kwargs)`` under a JAX transform and writes the mutated
collections back. :class:`Lift` says how one transform groups and treats them; the
``*_lift`` factories of this package build one per transform, so that Linen and core run
the same JAX code and differ only in how ``body`` rebuilds the caller's objects.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import jax
import numpy as np

from flaxen import errors
from flaxen.core import meta
from flaxen.core import scope as core_scope
from flaxen.core.filters import CollectionFilter, in_filter
from flaxen.core.filters import intersect_filters as intersect
from flaxen.core.scope import Scope

__all__ = [
  "Lift", "LiftStatic", "static_fields", "Groups", "group_index", "intersect", "hashable",
  "descend", "cover", "static_positions", "snapshot_variables", "snapshot_rngs",
  "mutated_groups", "write_back", "hidden", "box_axes", "restore_static", "bind_roots",
  "immutable_inside", "run", "DYNAMIC",
]

# Argument leaves handed to JAX; every other leaf is static (closed over).
DYNAMIC = (jax.Array, np.ndarray, np.generic, int, float, complex)
Groups = tuple[dict[str, tuple[Any, ...]], ...]


@dataclasses.dataclass(frozen=True)
class Lift:
  """How one transform lifts a call.

  Attributes:
    name: the transform's name, for errors (``"vmap"``).
    transform: ``transform(body, static, variables, rngs, args, kwargs) -> (y, mutated)``
      runs ``body(variables, rngs, args, kwargs)`` under the JAX transform; ``variables`` and
      ``mutated`` are tuples of ``{collection: (subtree per scope)}``, one per variable group
      and a last one for the rest; ``rngs`` likewise per rng group. ``static`` has at least
      ``flags``, ``outer_mutable``, ``treedef``, ``static_leaves`` and the cotangent
      converters ``grads_out`` / ``tangents_in`` (see ``autodiff.py``).
    variable_groups: collection filters; a collection joins the first group it matches.
    rng_groups: rng stream filters, likewise.
    mutable: collections that stay mutable inside (intersected with the outer filter).
    why: why other collections are immutable inside, for the error message.
    variables: the collections lifted at all.
    rngs: the rng streams lifted at all.
    static_argnums: positional arguments (the module or scope is 0) static as a whole.
    static_argnames: keyword arguments that are static as a whole.
    relative_rngs: inside, rng draws fold only the path below each lifted root (whose keys
      were drawn at its place), so the traced body does not depend on where the roots sit:
      ``jit`` shares one trace among sibling modules (see :meth:`LiftStatic.cache_key`).
  """

  name: str
  transform: Callable[..., tuple[Any, Groups]]
  variable_groups: Sequence[CollectionFilter] = ()
  rng_groups: Sequence[CollectionFilter] = ()
  mutable: CollectionFilter = True
  why: str = ""
  variables: CollectionFilter = True
  rngs: CollectionFilter = True
  static_argnums: tuple[int, ...] = ()
  static_argnames: tuple[str, ...] = ()
  relative_rngs: bool = False


@dataclasses.dataclass(frozen=True)
class LiftStatic:
  """What a lifted call's pure body needs besides arrays; hashable (jit caches on it).
  Linen's and core's subclasses add how the caller's objects are rebuilt."""

  fn: Callable[..., Any]
  paths: tuple[tuple[str, ...], ...]  # of the covering root scopes
  treedef: Any  # of (args, kwargs), None counted as a leaf
  static_leaves: tuple[tuple[int, Any], ...]
  mutable: Any  # inside the transform
  outer_mutable: Any
  flags: tuple[tuple[str, Any], ...]
  groups: tuple[Any, ...]
  name: str
  why: str
  relative_rngs: bool
  api: ClassVar[str] = "flaxen.core."  # how errors name the transform: api + name

  def cache_key(self) -> tuple[Any, ...]:
    """What a trace of the body bakes in, as a hashable value, for a lift with
    ``relative_rngs``: every field but where the roots sit (their variables and rng keys are
    inputs, and names inside are relative to them), so calls that differ only in the
    roots' paths (sibling modules) share one trace. Subclasses replace what else is only
    about where the call sits (a rebuilt module's name)."""
    return (type(self), *(self.key_part(f.name) for f in dataclasses.fields(self)))

  def key_part(self, field: str) -> Any:
    """One field's part of :meth:`cache_key`."""
    value = getattr(self, field)
    return len(value) if field == "paths" else value


def static_fields(spec: Lift, fn: Callable[..., Any], roots: Sequence[Scope], treedef: Any,
                  static_leaves: Sequence[tuple[int, Any]]) -> dict[str, Any]:
  """The :class:`LiftStatic` fields of a call of ``fn`` lifting ``roots``."""
  outer = roots[0].root
  return dict(fn=fn, paths=tuple(s.path for s in roots), treedef=treedef,
              static_leaves=tuple(static_leaves),
              mutable=hashable(intersect(outer.mutable, spec.mutable)),
              outer_mutable=hashable(outer.mutable), flags=tuple(sorted(outer.flags.items())),
              groups=tuple(spec.variable_groups), name=spec.name, why=spec.why,
              relative_rngs=spec.relative_rngs)


def group_index(filters: Sequence[CollectionFilter], name: str) -> int:
  """The index of the first filter matching ``name`` (``len(filters)`` for the rest)."""
  for i, f in enumerate(filters):
    if in_filter(f, name):
      return i
  return len(filters)


def hashable(f: Any) -> Any:
  """A filter as a hashable value (lists and sets become sorted tuples)."""
  return tuple(sorted(f)) if isinstance(f, list | set | frozenset) else f


def descend(scope: Scope, rel: tuple[str, ...]) -> Scope:
  """The scope at ``rel`` below ``scope`` (created on the way when missing)."""
  for name in rel:
    scope = scope.push(name, reuse=True)
  return scope


def cover(scopes: list[Scope]) -> tuple[list[Scope], list[tuple[int, tuple[str, ...]]]]:
  """The fewest scopes whose subtrees hold all of ``scopes``, and where each one sits."""
  roots: list[Scope] = []
  for s in sorted(scopes, key=lambda s: len(s.path)):
    if not any(r.root is s.root and s.path[:len(r.path)] == r.path for r in roots):
      roots.append(s)
  where = []
  for s in scopes:
    i = next(i for i, r in enumerate(roots)
             if r.root is s.root and s.path[:len(r.path)] == r.path)
    where.append((i, s.path[len(roots[i].path):]))
  return roots, where


def static_positions(args: tuple[Any, ...], kwargs: dict[str, Any], spec: Lift) -> set[int]:
  """Leaf positions (None counted as a leaf) of the arguments marked static as a whole."""
  if not spec.static_argnums and not spec.static_argnames:
    return set()
  count = lambda t: len(jax.tree.leaves(t, is_leaf=lambda x: x is None))
  parts = [(i + 1 in spec.static_argnums, count(a)) for i, a in enumerate(args)]
  parts += [(n in spec.static_argnames, count(kwargs[n])) for n in sorted(kwargs)]
  out: set[int] = set()
  start = 0
  for static, n in parts:
    if static:
      out.update(range(start, start + n))
    start += n
  return out


def run(spec: Lift, static: Any, scopes: list[Scope], body: Callable[..., Any], treedef: Any,
        dyn: list[Any]) -> Any:
  """Snapshot ``scopes``, run ``body(static, ...)`` under ``spec.transform`` with the dynamic
  argument leaves ``dyn`` (flattened with ``treedef``), write the mutations back."""
  variables = snapshot_variables(scopes, spec)
  rngs = snapshot_rngs(scopes, spec)
  dyn_args, dyn_kwargs = jax.tree.unflatten(treedef, dyn)
  with hidden(scopes, spec.name):
    y, mutated = spec.transform(lambda *a, **kw: body(static, *a, **kw), static, variables,
                                rngs, dyn_args, dyn_kwargs)
  write_back(scopes, mutated)
  return y


def restore_static(static: Any, args: Any, kwargs: Any) -> tuple[Any, Any]:
  """The arguments with their static leaves put back (the dynamic ones as given)."""
  leaves = jax.tree.leaves((args, kwargs), is_leaf=lambda x: x is None)
  for i, value in static.static_leaves:
    leaves[i] = value
  return jax.tree.unflatten(static.treedef, leaves)


def snapshot_variables(scopes: list[Scope], spec: Lift) -> Groups:
  """The lifted collections of ``scopes``, grouped by ``spec.variable_groups``.

  A collection that none of ``scopes`` holds anything of is left out (as their own
  ``variables()`` leave it out), so what a lifted call sees does not depend on what other
  modules of the model created before it: sibling ``jit`` calls share one trace."""
  out: list[dict[str, tuple[Any, ...]]] = [{} for _ in range(len(spec.variable_groups) + 1)]
  views = [s.variables() for s in scopes]
  for col in scopes[0].root.store:
    if in_filter(spec.variables, col):
      trees = tuple(v.get(col, {}) for v in views)
      if any(trees):
        out[group_index(spec.variable_groups, col)][col] = trees
  return tuple(out)


def snapshot_rngs(scopes: list[Scope], spec: Lift) -> Groups:
  """One fresh key per lifted stream and scope, grouped by ``spec.rng_groups``."""
  out: list[dict[str, tuple[Any, ...]]] = [{} for _ in range(len(spec.rng_groups) + 1)]
  for stream in scopes[0].root.rngs:
    if in_filter(spec.rngs, stream):
      keys = tuple(s.make_rng(stream) for s in scopes)
      out[group_index(spec.rng_groups, stream)][stream] = keys
  return tuple(out)


def mutated_groups(inner: Sequence[Scope], groups: Sequence[CollectionFilter]) -> Groups:
  """The mutable collections of the rebuilt root scopes, grouped like the snapshot."""
  out: list[dict[str, list[Any]]] = [{} for _ in range(len(groups) + 1)]
  for k, s in enumerate(inner):
    for col, tree in s.mutable_variables().items():
      trees = out[group_index(groups, col)].setdefault(col, [{}] * len(inner))
      trees[k] = tree
  return tuple({c: tuple(t) for c, t in g.items()} for g in out)


def bind_roots(static: Any, variables: Groups, rngs: Groups,
               mutable: CollectionFilter) -> list[Scope]:
  """Fresh root scopes at ``static.paths`` over the snapshot groups (inside the transform)."""
  inner = []
  for i, path in enumerate(static.paths):
    vs = {col: trees[i] for group in variables for col, trees in group.items()}
    rs = {s: keys[i] for group in rngs for s, keys in group.items()}
    inner.append(core_scope.bind(vs, rs, mutable, dict(static.flags), path,
                                 relative_rngs=static.relative_rngs))
  return inner


@contextlib.contextmanager
def immutable_inside(static: Any) -> Iterator[None]:
  """A write to a collection that is mutable outside but not in the transform raises
  TransformImmutableCollectionError, which names the transform and the fix."""
  try:
    yield
  except errors.ModifyScopeVariableError as e:
    if in_filter(static.outer_mutable, e.col):
      raise errors.TransformImmutableCollectionError(static.api + static.name, e.col, static.why,
                                                     str(e)) from e
    raise


def write_back(scopes: Sequence[Scope], mutated: Groups) -> None:
  """Store what the transformed body returned into the original scopes."""
  for group in mutated:
    for col, trees in group.items():
      for s, tree in zip(scopes, trees, strict=True):
        if tree:
          s.put_variables({col: tree})


@contextlib.contextmanager
def hidden(scopes: Sequence[Scope], name: str) -> Iterator[None]:
  """Mark the binds of ``scopes`` as lifted by ``name`` while the transform traces: a write
  or rng draw through a closure then raises TransformedClosureError."""
  roots = list({id(s.root): s.root for s in scopes}.values())
  previous = [r.lifted for r in roots]
  for r in roots:
    r.lifted = name
  try:
    yield
  finally:
    for r, p in zip(roots, previous, strict=True):
      r.lifted = p


def box_axes(groups: Groups, axes: Sequence[int | None], params: dict[str, Any],
             add: bool) -> Groups:
  """Add (or remove) each group's mapped axis in the metadata of its boxed variables."""
  fn = meta.add_axis if add else meta.remove_axis
  return tuple(g if ax is None or not g else fn(g, ax, params)
               for g, ax in zip(groups, axes, strict=True))
