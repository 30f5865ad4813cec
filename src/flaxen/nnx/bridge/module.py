"""``bridge.Module``: an NNX module written like a Linen one.

Subclasses are dataclasses (fields are constructor arguments); variables come from
``self.param`` / ``self.variable`` in ``setup`` or in ``@bridge.compact`` methods, where
submodules are named automatically (``Dense_0``...) and become attributes. ``init`` /
``apply`` work as in Linen and take and return Linen variable dicts
(``{'params': {...}}``). Between calls the module holds its Variables like any NNX module.

How a call runs: ``apply`` clones the module, binds a :class:`Scope` (the ``Rngs``) to every
``bridge.Module`` in it, loads the given variables (a Variable where its attribute exists,
otherwise kept aside until ``setup``/``compact`` creates the submodule of that name), runs
the method, unbinds, and reads the Variables back out as collections.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> from flaxen.nnx import bridge
>>> class Dense(bridge.Module):
...   features: int
...   @bridge.compact
...   def __call__(self, x):
...     w = self.param('w', nnx.initializers.ones, (x.shape[-1], self.features))
...     return x @ w
>>> class MLP(bridge.Module):
...   @bridge.compact
...   def __call__(self, x):
...     h = Dense(3)(x)
...     return Dense(2)(h)
>>> variables = MLP().init(0, jnp.ones((1, 4)))
>>> {k: v['w'].shape for k, v in variables['params'].items()}
{'Dense_0': (4, 3), 'Dense_1': (3, 2)}
>>> MLP().apply(variables, jnp.ones((1, 4)))
Array([[12., 12.]], dtype=float32)
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import jax
import jax.numpy as jnp

from flaxen.core import meta
from flaxen.core.frozen_dict import FrozenDict
from flaxen.errors.core import ScopeParamShapeError
from flaxen.errors.nnx_bridge import BridgeUnboundModuleError
from flaxen.nnx.bridge.variables import to_linen_var, to_nnx_var
from flaxen.nnx.graphlib import clone, iter_graph
from flaxen.nnx.graphlib import state as graph_state
from flaxen.nnx.module import Module as NNXModule
from flaxen.nnx.object import Object
from flaxen.nnx.rnglib import Rngs, RngState
from flaxen.nnx.variable_names import variable_name_from_type, variable_type_from_name
from flaxen.nnx.variables import Param, Variable

__all__ = ["Module", "Scope", "AttrPriority", "ModuleStackEntry", "compact", "current_context",
           "current_module"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass
class ModuleStackEntry:
  """One running method: its module, whether it is ``@compact``, submodules made per type."""

  module: Any
  in_compact: bool
  type_counter: defaultdict = dataclasses.field(default_factory=lambda: defaultdict(int))


class _Context(threading.local):
  def __init__(self) -> None:
    self.stack: list[ModuleStackEntry | None] = [None]
    self.pending: dict[int, dict[str, Any]] = {}  # loaded variables of unmade submodules
    self.initializing: set[int] = set()  # ids of the modules bound by a running init
    self.setup_done: set[int] = set()  # ids of the bound modules whose setup ran


_CONTEXT = _Context()


def current_context() -> ModuleStackEntry | None:
  """The innermost running ``bridge.Module`` method, or None outside one."""
  return _CONTEXT.stack[-1]


def current_module() -> Any:
  """The module of :func:`current_context`, or None."""
  ctx = current_context()
  return None if ctx is None else ctx.module


class AttrPriority(enum.IntEnum):
  """Priorities of ``set_attr_priority`` (kept for Flax's API; flaxen orders a module's
  attributes by name whatever their priority)."""

  HIGH = 0
  INIT_PARENT = 20
  DEFAULT = 50
  LOW = 100


class Scope(Object):
  """What a bound ``bridge.Module`` draws on: its ``Rngs`` and the mutable collections."""

  def __init__(self, rngs: Rngs, mutable: Any = False):
    self.rngs = rngs
    self.mutable = mutable

  def copy(self) -> Scope:
    return Scope(self.rngs, self.mutable)


def auto_name(ctx: ModuleStackEntry, cls: type) -> str:
  """``{Class}_{i}``: the name of the ``i``-th submodule of type ``cls`` made in ``ctx``."""
  index = ctx.type_counter[cls]
  ctx.type_counter[cls] += 1
  return f"{cls.__name__}_{index}"


class _Meta(type):
  def __call__(cls, *args: Any, name: str | None = None, **kwargs: Any) -> Any:
    ctx = current_context()
    module = super().__call__(*args, **kwargs)
    if ctx is not None and ctx.in_compact:
      setattr(ctx.module, name or auto_name(ctx, cls), module)
    return module


def _is_bound(module: Any) -> bool:
  return module.__dict__.get("scope") is not None


def _run_setup(module: Module) -> None:
  if id(module) in _CONTEXT.setup_done or not hasattr(module, "setup"):
    return
  _CONTEXT.setup_done.add(id(module))
  _CONTEXT.stack.append(ModuleStackEntry(module, in_compact=False))
  try:
    module.setup()
  finally:
    _CONTEXT.stack.pop()


def _load(node: Any, tree: Mapping) -> None:
  """Puts loaded variables into ``node``: Variables where their attribute is free or holds
  one, sub-trees into existing submodules; the rest waits for its submodule."""
  for key, value in tree.items():
    child = node.__dict__.get(key) if isinstance(node, Object) else None
    if isinstance(value, Variable):
      if isinstance(child, Variable):
        child.value = value.value
      else:
        setattr(node, key, value)
    elif child is not None:
      _fill(child, value)
    else:
      _CONTEXT.pending.setdefault(id(node), {})[key] = value


def _fill(child: Any, tree: Mapping) -> None:
  _load(child, tree)
  if getattr(child, "linen_attributes", False) is None:  # a ToNNX: now initialized
    child.linen_attributes = tuple(tree)


def _bind(parent: Any, name: str, child: Any) -> None:
  """A submodule assigned to a bound module: loads its waiting variables, binds it."""
  pending = _CONTEXT.pending.get(id(parent), {}).pop(name, None)
  if pending is not None:
    _fill(child, pending)
  for _, node in iter_graph(child):
    if isinstance(node, Module) and not _is_bound(node):
      node.scope = parent.scope.copy()
      if parent.is_initializing():
        _CONTEXT.initializing.add(id(node))
      _run_setup(node)


class Module(NNXModule, metaclass=_Meta):
  """An NNX module with Linen's ``setup`` / ``@compact`` style (see the module docstring).

  Subclasses become dataclasses: annotated class attributes are constructor fields.
  """

  def __init_subclass__(cls, **kwargs: Any) -> None:
    super().__init_subclass__(**kwargs)
    dataclasses.dataclass(repr=False, eq=False)(cls)

  def __setattr__(self, name: str, value: Any) -> None:
    super().__setattr__(name, value)
    if _is_bound(self) and isinstance(value, NNXModule):
      _bind(self, name, value)

  scope: ClassVar[Scope | None] = None  # an instance attribute while bound
  attr_priorities: ClassVar[Mapping[str, AttrPriority]] = MappingProxyType({})

  def set_attr_priority(self, name: str, value: AttrPriority) -> None:
    """Records ``name``'s priority (Flax orders attributes by it; flaxen by name)."""
    self.attr_priorities = {**self.attr_priorities, name: value}

  def is_initializing(self) -> bool:
    """Whether the running call is ``init``."""
    return id(self) in _CONTEXT.initializing

  def make_rng(self, name: str = "default") -> jax.Array:
    """A new key from the ``name`` stream of the bound ``Rngs``.

    Raises:
      BridgeUnboundModuleError: not inside ``init``/``apply``.
    """
    if self.scope is None:
      raise BridgeUnboundModuleError(type(self).__name__, f"make_rng({name!r})")
    return getattr(self.scope.rngs, name)()

  def param(self, name: str, init_fn: Callable[..., Any], *init_args: Any, unbox: bool = True,
            **init_kwargs: Any) -> Param:
    """The ``Param`` attribute ``name``, made with ``init_fn(make_rng('params'), *init_args)``
    the first time (a loaded value is checked against the shape ``init_fn`` gives).

    Raises:
      BridgeUnboundModuleError: not inside ``init``/``apply``.
      ScopeParamShapeError: a loaded value has another shape.
    """
    return self._var("params", name, lambda key: init_fn(key, *init_args, **init_kwargs),
                     keyed=True)

  def variable(self, col: str, name: str, init_fn: Callable[..., Any] | None = None,
               *init_args: Any, unbox: bool = True, **init_kwargs: Any) -> Variable:
    """The Variable attribute ``name`` of collection ``col`` (its type from
    ``nnx.variable_type_from_name``), made with ``init_fn(*init_args)`` the first time."""
    return self._var(col, name, lambda _: init_fn(*init_args, **init_kwargs))

  def _var(self, col: str, name: str, make: Callable[[Any], Any], keyed: bool = False
           ) -> Variable:
    if self.scope is None:
      raise BridgeUnboundModuleError(type(self).__name__, f"creating {col} {name!r}")
    existing = self.__dict__.get(name)
    if isinstance(existing, Variable):
      if not self.is_initializing():  # loaded: check it against what init would make
        want = jax.eval_shape(lambda: make(jax.random.key(0)))  # any key gives the shape
        want = want.unbox() if meta.is_axis_metadata(want) else want
        if jnp.shape(want) != jnp.shape(existing.value):
          raise ScopeParamShapeError(name, type(self).__name__, jnp.shape(want),
                                     jnp.shape(existing.value))
      return existing
    var = to_nnx_var(col, make(self.make_rng("params") if keyed else None))
    if not isinstance(var, variable_type_from_name(col, allow_register=True)):
      var = variable_type_from_name(col, allow_register=True)(var.value, **var.get_metadata())
    setattr(self, name, var)
    return var

  def _collections(self) -> dict[str, Any]:
    out: dict[str, dict] = {}
    for path, var in graph_state(self).flat_state():
      if isinstance(var, RngState):
        continue
      node = out.setdefault(variable_name_from_type(type(var), allow_register=True), {})
      for key in path[:-1]:
        node = node.setdefault(str(key), {})
      node[str(path[-1])] = to_linen_var(var)
    return out

  @property
  def variables(self) -> FrozenDict:
    """The module's Variables as Linen collections."""
    return FrozenDict(self._collections())

  def apply(self, variables: Mapping[str, Any], *args: Any, rngs: Any = None,
            method: Callable[..., Any] | str = "__call__", mutable: Any = False,
            _initialize: bool = False, **kwargs: Any) -> Any:
    """Runs ``method`` on a copy of this module holding ``variables``; returns its output
    and, unless ``mutable`` is False, the copy's variables as Linen collections."""
    module = clone(self)
    loaded: dict[str, Any] = {}
    for col, tree in variables.items():
      _merge(loaded, jax.tree.map(lambda v, col=col: to_nnx_var(col, v), dict(tree),
                                  is_leaf=meta.is_axis_metadata))
    rngs = _as_rngs(rngs)
    modules = [m for _, m in iter_graph(module) if isinstance(m, Module)]
    for m in modules:
      m.scope = Scope(rngs, mutable)
      if _initialize:
        _CONTEXT.initializing.add(id(m))
    _load(module, loaded)
    for m in modules:
      _run_setup(m)
    fn = getattr(module, method) if isinstance(method, str) else functools.partial(method,
                                                                                  module)
    _CONTEXT.stack.append(ModuleStackEntry(module, in_compact=False))
    try:
      out = fn(*args, **kwargs)
    finally:
      _CONTEXT.stack.pop()
      for _, m in iter_graph(module):
        if isinstance(m, Module):
          if "scope" in m.__dict__:
            del m.scope
          for ids in (_CONTEXT.initializing, _CONTEXT.setup_done):
            ids.discard(id(m))
          _CONTEXT.pending.pop(id(m), None)
    return out if mutable is False else (out, module._collections())

  def init(self, rngs: Any = None, *args: Any, method: Callable[..., Any] | str = "__call__",
           **kwargs: Any) -> dict[str, Any]:
    """The variables ``method`` creates on these inputs, as Linen collections."""
    return self.apply({}, *args, rngs=rngs, method=method, mutable=True, _initialize=True,
                      **kwargs)[1]

  def init_with_output(self, rngs: Any = None, *args: Any,
                       method: Callable[..., Any] | str = "__call__", mutable: Any = False,
                       **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """``(output, variables)`` of ``init``."""
    return self.apply({}, *args, rngs=rngs, method=method, mutable=True, _initialize=True,
                      **kwargs)


def _merge(into: dict, tree: Mapping) -> None:
  for k, v in tree.items():
    if isinstance(v, Mapping) and isinstance(into.get(k), dict):
      _merge(into[k], v)
    else:
      into[k] = dict(v) if isinstance(v, Mapping) else v


def _as_rngs(rngs: Any) -> Rngs:
  if isinstance(rngs, Rngs):
    return rngs
  if rngs is None:
    return Rngs()
  if isinstance(rngs, Mapping):
    return Rngs(**rngs)
  return Rngs(rngs)


def compact(f: F) -> F:
  """Marks a ``bridge.Module`` method whose submodules are made (and named) inline."""

  @functools.wraps(f)
  def wrapper(self: Module, *args: Any, **kwargs: Any) -> Any:
    _CONTEXT.stack.append(ModuleStackEntry(self, in_compact=True))
    try:
      return f(self, *args, **kwargs)
    finally:
      _CONTEXT.stack.pop()

  return wrapper  # type: ignore[return-value]

