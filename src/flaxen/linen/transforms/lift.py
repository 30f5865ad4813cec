"""The one lifting mechanism behind every Linen transform (functionalization).

A JAX transform only sees the arguments of a pure function, so a transformed Module method
runs in three steps:

1. Snapshot: the variables and fresh rng keys of every scope the call touches (the target
   module's scope, the scopes of bound Modules held in its fields (a shared submodule passed
   to its constructor) and of those found inside the arguments, e.g. in a
   ``struct.PyTreeNode``) are read into pytrees, grouped per collection filter so that each
   transform can give each group its own axis (``{collection: (subtree per scope, ...)}``).
2. Inside the transform, :func:`_body` binds fresh root scopes at the same paths, rebuilds the
   modules on them (``clone(parent=scope)``), calls the user function and returns its output
   with the mutable collections, grouped the same way.
3. Write back: the returned collections are stored into the original scopes.

While the transform traces, the roots of the snapshotted binds are marked ``lifted``: calling
a module of them (one closed over by a lambda instead of passed in) raises
:class:`flaxen.errors.TransformedClosureError`. Non-array leaves of the arguments (functions,
strings, unbound Modules) are static: they are closed over, never handed to JAX.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax

from flaxen import errors
from flaxen.core import scope as core_scope
from flaxen.core.filters import CollectionFilter
from flaxen.core.lift.engine import (
  DYNAMIC,
  Groups,
  Lift,
  LiftStatic,
  bind_roots,
  box_axes,
  cover,
  descend,
  group_index,
  immutable_inside,
  intersect,
  mutated_groups,
  run,
  static_fields,
  static_positions,
)
from flaxen.linen import wrapping
from flaxen.linen.module import Module, _hashable
from flaxen.linen.wrapping import enter_frame, exit_frame

__all__ = ["Lift", "lift_call", "lift_target", "group_index", "box_axes", "intersect"]

Body = Callable[..., tuple[Any, Groups]]


@dataclasses.dataclass(frozen=True)
class Static(LiftStatic):
  """A :class:`LiftStatic` that also says how to rebuild the lifted Modules."""

  api: ClassVar[str] = "nn."
  modules: tuple[tuple[Module, int, tuple[str, ...]], ...] = ()  # (module, scope, rel path)
  # per module, its fields holding bound Modules: (field, treedef, leaves, ((leaf, module),))
  fields: tuple[tuple[tuple[str, Any, tuple[Any, ...], tuple[tuple[int, int], ...]], ...],
                ...] = ()
  n_fields: int = 0  # modules[1 : 1 + n_fields] are held in fields, the rest are arguments
  module_leaves: tuple[int, ...] = ()
  # Variables among the arguments: (leaf, collection, name, unbox, scope index, rel path)
  variable_leaves: tuple[tuple[int, str, str, bool, int, tuple[str, ...]], ...] = ()
  # Variables held in fields (a ``where`` entry ``(leaf, -1 - k)`` names the k-th):
  # (collection, name, unbox, scope index, rel path)
  field_variables: tuple[tuple[str, str, bool, int, tuple[str, ...]], ...] = ()
  # names the target module's running call has already given (submodules, variables): the
  # rebuilt module must not reuse them, nor restart ClassName_N naming over them
  reserved: frozenset[str] = frozenset()
  # the method interceptors active at the call (nn.intercept_methods, tabulate): a trace
  # holds what they did, so they are part of it
  interceptors: tuple[Callable[..., Any], ...] = ()

  def key_part(self, field: str) -> Any:
    """Lifted modules enter the trace key by class and construction attributes, not by
    name: they are rebuilt on the lifted scopes, which the key does not hold either. Under
    an interceptor or a capture_intermediates function, which may look at each module's
    path, the paths are part of the key."""
    if field == "paths" and (self.interceptors
                             or callable(dict(self.flags).get("capture_intermediates"))):
      return self.paths
    if field != "modules":
      return super().key_part(field)
    return tuple((_module_key(m, {f[0] for f in fields}), i, rel)
                 for (m, i, rel), fields in zip(self.modules, self.fields, strict=True))

  def grads_out(self, group: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    """Variable cotangents ``{collection: (tree per scope)}`` as the target module's
    ``{collection: tree}``."""
    return {col: trees[0] for col, trees in group.items()}

  def tangents_in(self, user: dict[str, Any], cols: tuple[str, ...]) -> dict[str, Any]:
    """The target module's ``{collection: tree}`` as ``{collection: (tree,)}``."""
    return {col: (user[col],) for col in cols}


def lift_call(spec: Lift, fn: Callable[..., Any], module: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
  """Run ``fn(module, *args, **kwargs)`` under ``spec``'s transform (see module docstring).

  Raises:
    flaxen.errors.TransformTargetError: ``module`` is not a bound Module.
  """
  if not isinstance(module, Module) or module.scope is None:
    raise errors.TransformTargetError(module, spec.name)
  leaves, treedef = jax.tree.flatten((args, kwargs), is_leaf=lambda x: x is None)
  static_pos = static_positions(args, kwargs, spec)
  dyn, static_leaves, module_leaves, arg_modules = [], [], [], []
  var_leaves, var_scopes = [], []
  for i, leaf in enumerate(leaves):
    if isinstance(leaf, Module) and leaf.scope is not None and i not in static_pos:
      module_leaves.append(i)
      arg_modules.append(leaf)
      dyn.append(None)
    elif isinstance(leaf, core_scope.Variable) and i not in static_pos:
      # a Variable handed in (not closed over) is rebuilt inside on the lifted scope
      var_leaves.append((i, leaf.collection, leaf.name, leaf.unbox))
      var_scopes.append(leaf.scope)
      dyn.append(None)
    elif i in static_pos or not isinstance(leaf, DYNAMIC):
      static_leaves.append((i, leaf))
      dyn.append(None)
    else:
      dyn.append(leaf)
  fields, field_modules, field_vars = _field_modules(module)
  mods = [module, *field_modules, *arg_modules]
  scopes, where = cover([m.scope for m in mods] + var_scopes + [v.scope for v in field_vars])
  where, var_where, field_var_where = (where[:len(mods)], where[len(mods):len(mods) + len(
    var_scopes)], where[len(mods) + len(var_scopes):])
  static = Static(
    **static_fields(spec, fn, scopes, treedef, static_leaves),
    modules=tuple((m, i, rel) for m, (i, rel) in zip(mods, where, strict=True)),
    fields=fields + ((),) * len(arg_modules), n_fields=len(field_modules),
    module_leaves=tuple(module_leaves),
    variable_leaves=tuple((*v, i, rel) for v, (i, rel) in zip(var_leaves, var_where,
                                                               strict=True)),
    field_variables=tuple((v.collection, v.name, v.unbox, i, rel)
                          for v, (i, rel) in zip(field_vars, field_var_where, strict=True)),
    reserved=_reserved(module), interceptors=tuple(wrapping.ctx.interceptors))
  return run(spec, static, scopes, body, treedef, dyn)


def _module_key(module: Module, skip: set[str]) -> tuple[Any, ...]:
  """``module``'s class and attributes but its name; ``skip`` holds fields that the static
  description records otherwise (those holding bound Modules or Variables)."""
  d = module.__dict__
  return (type(module), tuple((f, _hashable(d[f] if f in d else getattr(module, f)))
                              for f in module._field_names if f not in skip))


def _reserved(module: Module) -> frozenset[str]:
  state = module._state
  if not state.call_names:
    return frozenset()
  return frozenset(n if isinstance(n, str) else n[1] for n in state.call_names)


def _field_modules(module: Module) -> tuple[tuple[Any, ...], list[Module], list[Any]]:
  """The bound Modules held in ``module``'s fields (shared submodules given to its
  constructor, bound elsewhere), and theirs in turn, children before the modules holding
  them; with, per module (the target first), where each sits in its fields, so that the
  body can rebuild them all inside the transform. Variables held in fields (a Variable
  given to a submodule's constructor) are rebuilt too: the third list."""
  found: list[Module] = []
  variables: list[Any] = []
  var_index: dict[int, int] = {}
  specs: list[tuple[Any, ...]] = []
  index: dict[int, int] = {}
  busy: set[int] = set()

  def visit(m: Module) -> tuple[Any, ...]:
    fields = []
    d = m.__dict__
    for f in m._field_names:
      value = d.get(f)
      if value is None or isinstance(value, (*DYNAMIC, str)):
        continue
      leaves, treedef = jax.tree.flatten(value, is_leaf=lambda x: isinstance(x, Module))
      where = []
      for li, leaf in enumerate(leaves):
        if isinstance(leaf, core_scope.Variable):
          if id(leaf) not in var_index:
            var_index[id(leaf)] = len(variables)
            variables.append(leaf)
          where.append((li, -1 - var_index[id(leaf)]))
          continue
        if not (isinstance(leaf, Module) and leaf.scope is not None):
          continue
        key = id(leaf)
        if key not in index and key not in busy:
          busy.add(key)
          spec = visit(leaf)
          found.append(leaf)
          specs.append(spec)
          index[key] = len(found)  # position in the lifted modules (0 is the target)
        if key in index:
          where.append((li, index[key]))
      if where:
        held = {li for li, _ in where}
        kept = tuple(None if li in held else leaf for li, leaf in enumerate(leaves))
        fields.append((f, treedef, kept, tuple(where)))
    return tuple(fields)

  busy.add(id(module))
  return (visit(module), *specs), found, variables


def unbound(fn: Any) -> Any:
  """A Module's bound method as its function: it runs on the module rebuilt inside the
  transform (passed as the first argument), not on the outer module it was bound to."""
  if getattr(fn, "__self__", None) is not None and isinstance(fn.__self__, Module):
    return fn.__func__
  return fn


def body(static: Static, variables: Groups, rngs: Groups, args: Any, kwargs: Any,
         mutable: CollectionFilter | None = None,
         fn: Callable[..., Any] | None = None) -> tuple[Any, Groups]:
  """The pure function a transform runs: rebuild, call, return ``(y, mutated groups)``.

  ``mutable`` overrides the inner mutability (scan's init pass makes broadcast collections
  mutable for one call); ``fn`` replaces the called function (custom_vjp's forward pass).
  """
  inner = bind_roots(static, variables, rngs, static.mutable if mutable is None else mutable)
  mods: list[Any] = [None] * len(static.modules)
  for k in [*range(1, len(mods)), 0]:  # modules held in fields come before their holders
    updates = {}
    for f, treedef, kept, where in static.fields[k]:
      leaves = list(kept)
      for li, mi in where:
        if mi >= 0:
          leaves[li] = mods[mi]
        else:
          col, name, unbox, si, rel = static.field_variables[-1 - mi]
          leaves[li] = core_scope.Variable(descend(inner[si], rel), col, name, unbox)
      updates[f] = jax.tree.unflatten(treedef, leaves)
    m, i, rel = static.modules[k]
    mods[k] = m.clone(parent=descend(inner[i], rel), **updates)
  if static.reserved:  # kept across the rebuilt module's own calls (unlike call_names)
    mods[0]._state.setup_names.update(static.reserved)
  leaves = jax.tree.leaves((args, kwargs), is_leaf=lambda x: x is None)
  for i, value in static.static_leaves:
    leaves[i] = value
  for i, m in zip(static.module_leaves, mods[1 + static.n_fields:], strict=True):
    leaves[i] = m
  for i, col, name, unbox, si, rel in static.variable_leaves:
    leaves[i] = core_scope.Variable(descend(inner[si], rel), col, name, unbox)
  args, kwargs = jax.tree.unflatten(static.treedef, leaves)
  fn = unbound(fn or static.fn)
  # A plain function ``fn(mdl, ...)`` (the function form) runs as if it were a compact method
  # of ``mdl``: it may create variables and submodules there, as a wrapped method may.
  frame = not getattr(fn, "_flaxen_wrapped", False)
  if frame:
    enter_frame(mods[0], compact=True)
  try:
    with immutable_inside(static):
      y = fn(mods[0], *args, **kwargs)
    _check_returned(y, fn)
  finally:
    if frame:
      exit_frame(mods[0], compact=True)
    for s in inner:
      s.invalidate()
  return y, mutated_groups(inner, static.groups)


def _check_returned(y: Any, fn: Callable[..., Any]) -> None:
  """A Module or Variable returned from inside a transform is bound to its inner scope."""
  if isinstance(y, dict | list | tuple | Module | core_scope.Variable):
    for leaf in jax.tree.leaves(y, is_leaf=lambda x: isinstance(x, core_scope.Variable)):
      if isinstance(leaf, Module | core_scope.Variable):
        raise errors.TransformedMethodReturnValueError(getattr(fn, "__qualname__", repr(fn)))


def lift_target(target: Any, spec: Lift | Callable[..., Lift], methods: Any = None,
                prefix: str | None = None) -> Any:
  """Apply ``spec`` to a Module class (its ``methods``, default ``__call__``) or a function.

  A class gives a subclass named ``{Prefix}{Class}`` (so instances auto-name as
  ``VmapDense_0``) whose methods run lifted; a function ``fn(module, *args)`` gives a function
  with the same signature. ``spec`` may be a function ``make(**overrides) -> Lift`` of the
  transform's keyword arguments: then ``methods`` may be a dict ``{method: overrides}``
  giving each method its own arguments (as in Flax).
  """
  make = None
  if not isinstance(spec, Lift):
    make, spec = spec, spec()
  if (isinstance(target, functools.partial) and isinstance(target.func, type)
      and issubclass(target.func, Module)):  # partial(nn.Dense, use_bias=False)
    return functools.partial(lift_target(target.func, make or spec, methods, prefix), *target.args,
                             **target.keywords)
  if isinstance(target, type) and issubclass(target, Module):
    attrs: dict[str, Any] = {}
    for name in methods or ("__call__",):
      overrides = methods[name] if isinstance(methods, Mapping) else None
      own = make(**overrides) if overrides and make is not None else spec
      attrs[name] = _lifted_method(own, getattr(target, name))
    prefix = prefix or spec.name.capitalize()
    cls = type(f"{prefix}{target.__name__}", (target,), attrs)
    cls.__module__ = target.__module__
    return cls
  if not callable(target):
    raise errors.TransformTargetError(target, spec.name)

  @functools.wraps(target)
  def wrapper(module: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(module, Module) and module.scope is None and _is_method_of(target, module):
      # a transformed method of an unbound module (an init_with_output override, say) has
      # nothing to lift; a plain function of an unbound module is a mistake (below)
      return target(module, *args, **kwargs)
    return lift_call(spec, target, module, args, kwargs)

  return wrapper


def _is_method_of(fn: Any, module: Module) -> bool:
  """Whether ``fn`` was defined in the body of one of ``module``'s classes."""
  owner = getattr(fn, "__qualname__", "").rpartition(".")[0]
  return any(owner == klass.__qualname__ for klass in type(module).__mro__)


def _lifted_method(spec: Lift, fn: Callable[..., Any]) -> Callable[..., Any]:
  @functools.wraps(fn)
  def lifted(self: Module, *args: Any, **kwargs: Any) -> Any:
    return lift_call(spec, fn, self, args, kwargs)

  lifted._flaxen_wrapped = True  # type: ignore[attr-defined]  # runs setup inside, not here
  return lifted
