"""The Linen Module: a dataclass that describes a computation with variables and rngs.

Lifecycle. A Module is built unbound (no variables). ``init``/``apply`` bind a fresh clone to
a root :class:`~flaxen.core.Scope` for the duration of one pure call. A bound module runs
``setup()`` lazily on its first method call or attribute miss; submodules assigned there are
named after the attribute and bound on assignment. Submodules created in the one
``@compact`` method are bound at construction and named ``ClassName_N`` in creation order
(or by their explicit ``name=``).

Cost model. Everything that depends only on the class (fields, compact method, setup
presence) is computed once in ``__init_subclass__``. Construction is the dataclass
``__init__`` plus one ``__post_init__`` that binds the child (a scope ``push``); cloning calls
the constructor with the cached field names; nothing is deep-copied and nothing adds
operations to the traced program.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> class Scale(nn.Module):
...   features: int
...   @nn.compact
...   def __call__(self, x):
...     return x * self.param("s", jax.nn.initializers.ones, (self.features,))
>>> variables = Scale(3).init(jax.random.key(0), jnp.ones(3))
>>> Scale(3).apply(variables, jnp.arange(3.0)).tolist()
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import jax.numpy as jnp
from typing_extensions import dataclass_transform

from flaxen import errors
from flaxen.core import lazy as core_lazy
from flaxen.core import scope as core_scope
from flaxen.core.filters import CollectionFilter, DenyList, union_filters
from flaxen.core.scope import Scope, Variable
from flaxen.linen.wrapping import State, compact, ctx, nowrap, run_setup, wrap_method

__all__ = ["Module", "Variable", "compact", "nowrap", "merge_param"]

M = TypeVar("M", bound="Module")


class _Unspecified:
  """The default ``parent``: a singleton, kept one by copy, deepcopy and pickle (identity
  checks against it must hold for copied or unpickled modules)."""

  def __repr__(self) -> str:
    return "<unspecified parent>"

  def __copy__(self) -> _Unspecified:
    return _UNSPECIFIED

  def __deepcopy__(self, memo: Any) -> _Unspecified:
    return _UNSPECIFIED

  def __reduce__(self) -> str:
    return "_UNSPECIFIED"  # pickled by reference to the module-level singleton


_UNSPECIFIED: Any = _Unspecified()
_NOT_INTERMEDIATES = DenyList("intermediates")  # init's default: everything else is mutable
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass_transform(field_specifiers=(dataclasses.field,))  # type: ignore[literal-required]
class _instance_only:  # noqa: N801 (used as a decorator)
  """An entry point (``init``, ``apply``, ...) that names the mistake when it is called on
  the Module class instead of an instance (``Dense.init(key, x)``)."""

  def __init__(self, fn: Callable[..., Any]):
    self.fn = fn
    functools.update_wrapper(self, fn)

  def __get__(self, obj: Any, owner: type | None = None) -> Any:
    if obj is not None:
      return self.fn.__get__(obj, owner)
    fn = self.fn

    @functools.wraps(fn)
    def from_class(*args: Any, **kwargs: Any) -> Any:
      if not args or not isinstance(args[0], owner):  # type: ignore[arg-type]
        raise errors.InvalidInstanceModuleError(fn.__name__, getattr(owner, "__name__", "?"))
      return fn(*args, **kwargs)

    return from_class


class Module:
  """Base class of Linen modules (see the module docstring for the lifecycle).

  Subclasses are frozen dataclasses with two extra keyword-only fields, ``parent`` and
  ``name``. Annotated attributes are constructor fields; unannotated ones are class
  constants. Attributes may be assigned only in ``setup`` (or a ``__post_init__`` before it
  calls ``super().__post_init__()``).
  """

  # Class-level defaults; instances override them when bound.
  scope: Scope | None = None
  _state: State | None = None
  _field_names: tuple[str, ...] = ()
  _has_setup = False

  parent: Any  # keyword-only dataclass fields that each subclass receives
  name: str | None

  def __init_subclass__(cls, **kwargs: Any) -> None:
    super().__init_subclass__(**kwargs)
    own = cls.__dict__.get("__annotations__", {})
    reserved = [n for n in ("parent", "name", "scope") if n in own]
    if reserved:
      raise errors.ReservedModuleAttributeError(own, cls.__name__)
    for attr, value in list(cls.__dict__.items()):
      if (
        inspect.isfunction(value)
        and (attr == "__call__" or not attr.startswith("__"))
        and attr not in own  # a field whose default is a function (e.g. kernel_init)
        and attr not in _BASE_NAMES
        and not getattr(value, "nowrap", False)
        and not getattr(value, "_flaxen_wrapped", False)
      ):
        setattr(cls, attr, wrap_method(value, attr))
    if "parent" not in getattr(cls, "__dataclass_fields__", {}):
      cls.__annotations__ = {**own, "parent": "Any", "name": "str | None"}
      cls.parent = dataclasses.field(  # type: ignore[assignment]
        default=_UNSPECIFIED, repr=False, compare=False, hash=False, kw_only=True
      )
      cls.name = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    # frozen=True makes __init__ store fields with object.__setattr__ (fast) and gives
    # __eq__/__hash__ over the construction attributes; Module's own __setattr__ (frozen
    # except in setup) then replaces the dataclass one.
    explicit_hash = "__hash__" in cls.__dict__
    dataclasses.dataclass(cls, frozen=True, eq=True, repr=True)
    # parent and name come last in the fields, as in Flax, also after a subclass's own fields
    fields = cls.__dataclass_fields__
    cls.__dataclass_fields__ = {
      **{k: f for k, f in fields.items() if k not in ("parent", "name")},
      "parent": fields["parent"], "name": fields["name"],
    }
    del cls.__setattr__
    del cls.__delattr__
    if not explicit_hash:
      cls.__hash__ = Module.__hash__  # type: ignore[method-assign]
    cls._field_names = tuple(
      f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")
    )
    # Several @compact methods are allowed (as in Flax 0.12): they share the module's
    # auto-naming cursor, so a compact method called from another names on from it.
    cls._has_setup = cls.setup is not Module.setup

  # ------------------------------------------------------------------- binding

  def __post_init__(self) -> None:
    d = self.__dict__
    parent = d["parent"]
    if parent is _UNSPECIFIED:
      stack = ctx.stack
      parent = stack[-1] if stack else None
      d["parent"] = parent
    if isinstance(parent, Scope):
      d["scope"] = parent
      d["_state"] = State()
      d["_initialized"] = True
      self._adopt_fields()
    elif parent is not None and parent.scope is not None:
      pstate = parent._state
      name = d["name"]
      if pstate.in_setup:
        if name is not None:  # explicitly named: bind now; unnamed ones on assignment
          self._bind_as(parent, name, in_setup=True)
      elif pstate.compact_depth:
        if name is None:
          name = parent._auto_name(type(self).__name__)
        self._bind_as(parent, name, in_setup=False)
      else:
        raise errors.AssignSubModuleError(type(self).__name__, _describe(parent))
      d["_initialized"] = True
      if d.get("scope") is not None:
        self._adopt_fields()
    d["_initialized"] = True

  def _run_setup(self) -> None:
    """Adopt submodules held in fields, then run the user's ``setup`` (once per binding)."""
    state = self._state
    state.setup_done = True
    state.in_setup = True
    ctx.stack.append(self)
    try:
      self._adopt_fields()
      if self._has_setup:
        run_setup(self, type(self).setup)
    finally:
      state.in_setup = False
      ctx.stack.pop()

  def _adopt_fields(self) -> None:
    """Bind the unbound submodules held in fields as children named after the field. Done
    when the module is bound (and again, idempotently, before setup), so that reading
    ``model.field.method`` or ``self.seq.layers[0]`` finds them bound."""
    d = self.__dict__
    state = d["_state"]
    in_setup, state.in_setup = state.in_setup, True
    try:
      for f in self._field_names:
        value = d.get(f)
        if isinstance(value, Module | list | tuple | dict):
          adopted = self._adopt(f, value)
          if adopted is not value:
            object.__setattr__(self, f, adopted)
    finally:
      state.in_setup = in_setup

  def _bind_as(self, parent: Module, name: str, in_setup: bool) -> None:
    pstate = parent._state
    taken = pstate.setup_names if in_setup else pstate.call_names
    if name in taken or ("", name) in taken or (not in_setup and name in pstate.setup_names):
      why = " by a submodule defined in setup()" if name in pstate.setup_names else ""
      raise errors.NameInUseError("submodule", name, _describe(parent), why)
    taken.add(name)
    d = self.__dict__
    d["name"] = name
    d["parent"] = parent
    d["scope"] = parent.scope.push(name, reuse=True)  # type: ignore[union-attr]
    d["_state"] = State()
    if d.get("_initialized"):  # else __post_init__ is still running: fields are adopted later
      self._adopt_fields()

  def _auto_name(self, prefix: str) -> str:
    state = self._state
    i = state.cursor.get(prefix, 0)
    name = f"{prefix}_{i}"
    while name in state.call_names or ("", name) in state.call_names or name in state.setup_names:
      i += 1
      name = f"{prefix}_{i}"
    state.cursor[prefix] = i + 1
    return name

  def __setattr__(self, name: str, value: Any) -> None:
    d = self.__dict__
    # Until it is attached, a top-level module (parent None) takes assignments, as in Flax.
    if not d.get("_initialized") or (d["parent"] is None and d.get("scope") is None):
      object.__setattr__(self, name, value)
      return
    state = d.get("_state")
    if state is None or not state.in_setup:
      raise errors.SetAttributeFrozenModuleError(type(self).__name__, name, value)
    if name in self._field_names or name in ("parent", "name"):
      raise errors.SetAttributeInModuleSetupError(type(self).__name__, name)
    object.__setattr__(self, name, self._adopt(name, value))

  def __delattr__(self, name: str) -> None:
    raise errors.SetAttributeFrozenModuleError(type(self).__name__, name, "<deleted>")

  def _adopt(self, name: str, value: Any) -> Any:
    """Name and bind the submodules in ``value`` (lists become tuples, as in Flax)."""
    if isinstance(value, Module):
      if value.scope is not None:
        return value  # already bound elsewhere: shared
      if value.parent is None:  # built outside any module: adopt a copy, one per bind
        root = self.scope.root  # type: ignore[union-attr]
        memo = root.adopted
        if memo is None:
          memo = root.adopted = {}
        hit = memo.get(id(value))
        if hit is not None:
          return hit[1]  # the same object used again: share its copy (and variables)
        adopted = value.clone(parent=self, name=value.name or name)
        memo[id(value)] = (value, adopted)
        return adopted
      if value.name is None:
        value._bind_as(self, name, in_setup=True)
      return value
    if isinstance(value, list | tuple):
      items = tuple(self._adopt(f"{name}_{i}", v) for i, v in enumerate(value))
      if isinstance(value, tuple) and all(a is b for a, b in zip(items, value, strict=True)):
        return value
      return type(value)(*items) if hasattr(value, "_fields") else items
    if isinstance(value, dict):
      try:  # adopted in key order (JAX's), so a module shared by several keys is named once
        keys = sorted(value)
      except TypeError:
        keys = list(value)
      adopted = {k: self._adopt(f"{name}_{k}", value[k]) for k in keys}
      if all(adopted[k] is value[k] for k in value):
        return value
      return {k: adopted[k] for k in value}
    return value

  def __getattr__(self, name: str) -> Any:
    # Only reached when normal lookup fails: maybe setup() has not defined it yet.
    state = self._state
    if state is not None and not state.setup_done and not name.startswith("__"):
      self._run_setup()
      if name in self.__dict__:
        return self.__dict__[name]
    if state is None and type(self)._has_setup and not name.startswith("__"):
      raise errors.CallSetupUnboundModuleError(type(self).__name__, name)
    desc = next((c.__dict__[name] for c in type(self).__mro__ if name in c.__dict__), None)
    if hasattr(desc, "__get__") and not name.startswith("__"):
      # A property's own AttributeError lands here as if the property were missing: run it
      # again (setup may have defined what it needs since) and report its real error.
      try:
        return desc.__get__(self, type(self))
      except AttributeError as e:
        raise errors.DescriptorAttributeError(type(self).__name__, name, e) from e
    raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

  def __dir__(self) -> Iterable[str]:
    state = self._state
    if state is not None and not state.setup_done:  # list what setup defines too
      self._run_setup()
    return object.__dir__(self)

  def __hash__(self) -> int:
    # Tolerates list/dict attributes (common in ported code), so model.apply can be a
    # static field or a jit static argument.
    return hash((type(self), self.name, *(_hashable(getattr(self, f)) for f in self._field_names)))

  def setup(self) -> None:
    """Define submodules and variables; runs lazily once the module is bound."""

  def clone(self: M, *, parent: Any = None, _deep_clone: bool | dict = False,
            _reset_names: bool = False, **updates: Any) -> M:
    """A new module with the same construction attributes, except ``updates``.

    Args:
      parent: the new parent (a Module, a Scope, or None for an unbound module).
      _deep_clone: also replace the submodules held in fields by unbound copies, so that
        the clone adopts them afresh when it is bound (``init`` / ``apply`` do this); a
        submodule held in several places gets one copy.
      _reset_names: give the clone no name (with ``_deep_clone``, its copies neither).
      **updates: construction attributes to change.

    >>> import flaxen.linen as nn
    >>> class Block(nn.Module):
    ...   width: int = 2
    >>> Block().clone(width=5).width
    5
    """
    d = self.__dict__
    attrs = {f: d[f] if f in d else getattr(self, f) for f in self._field_names}
    if _deep_clone is not False:
      memo = _deep_clone if isinstance(_deep_clone, dict) else {}
      attrs = {f: _unbound_copies(v, memo, _reset_names) for f, v in attrs.items()}
    attrs["name"] = None if _reset_names else d.get("name")
    attrs.update(updates)
    return type(self)(**attrs, parent=parent)

  def copy(self: M, *, parent: Any = _UNSPECIFIED, name: str | None = None,
           **updates: Any) -> M:
    """A clone whose parent defaults to the module being defined (inside setup/compact)."""
    return self.clone(parent=parent, name=name, **updates)

  # ---------------------------------------------------------------- entry points

  @_instance_only
  def apply(self, variables: Mapping[str, Any], *args: Any, rngs: Mapping[str, Any] | None = None,
            method: Callable[..., Any] | str | None = None, mutable: CollectionFilter = False,
            capture_intermediates: bool | Callable[[Module, str], bool] = False,
            **kwargs: Any) -> Any:
    """Run ``method`` (default ``__call__``) bound to ``variables``: a pure function.

    Returns:
      The output, or ``(output, updated_collections)`` when something is mutable.
    """
    fn = _resolve_method(self, method)
    if capture_intermediates:
      mutable = union_filters(mutable, "intermediates")
    flags = {"capture_intermediates": capture_intermediates} if capture_intermediates else None
    y, mutated = _run(self, fn, variables, rngs, mutable, flags, args, kwargs)
    return y if mutable is False else (y, mutated)

  @_instance_only
  def init_with_output(self, rngs: Any, *args: Any,
                       method: Callable[..., Any] | str | None = None,
                       mutable: CollectionFilter = _NOT_INTERMEDIATES,
                       capture_intermediates: bool | Callable[[Module, str], bool] = False,
                       **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """``apply`` with no variables, all collections (but intermediates) mutable.

    Args:
      rngs: one key (the "params" stream) or a dict of streams.
    """
    if not isinstance(rngs, Mapping):
      rngs = {"params": rngs}
    fn = _resolve_method(self, method)
    if capture_intermediates:
      mutable = union_filters(mutable, "intermediates")
    flags = {"initializing": True, "capture_intermediates": capture_intermediates}
    return _run(self, fn, {}, rngs, mutable, flags, args, kwargs)

  @_instance_only
  def init(self, rngs: Any, *args: Any, method: Callable[..., Any] | str | None = None,
           mutable: CollectionFilter = _NOT_INTERMEDIATES,
           capture_intermediates: bool | Callable[[Module, str], bool] = False,
           **kwargs: Any) -> dict[str, Any]:
    """Initialize the variables: ``init_with_output(...)[1]``."""
    return self.init_with_output(rngs, *args, method=method, mutable=mutable,
                                 capture_intermediates=capture_intermediates, **kwargs)[1]

  @_instance_only
  def lazy_init(self, rngs: Any, *args: Any, method: Callable[..., Any] | str | None = None,
                mutable: CollectionFilter = _NOT_INTERMEDIATES, **kwargs: Any) -> dict[str, Any]:
    """``init`` from input shapes only: ``args`` may be ``jax.ShapeDtypeStruct``.

    Partially evaluates ``init`` (:func:`flaxen.core.lazy.partial_evaluate`): what the
    variables need is computed under ``jax.jit``; the forward computation on the abstract
    inputs never runs.

    Raises:
      flaxen.errors.LazyInitError: a variable depends on an abstract input's values.
    """

    def run(rngs: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
      return self.init(rngs, *args, method=method, mutable=mutable, **kwargs)

    return core_lazy.partial_evaluate(run)(rngs, *args, **kwargs)

  @_instance_only
  def bind(self: M, variables: Mapping[str, Any], *args: Any,
           rngs: Mapping[str, Any] | None = None, mutable: CollectionFilter = False) -> M:
    """A clone bound to ``variables`` for interactive use (it stays bound)."""
    scope = core_scope.bind(variables, rngs, mutable)
    return self.clone(parent=scope)

  def unbind(self: M) -> tuple[M, dict[str, Any]]:
    """``(unbound clone, this module's variables)``."""
    if self.scope is None:
      raise errors.CallUnbindOnUnboundModuleError(type(self).__name__)
    return self.clone(_deep_clone=True, _reset_names=True), dict(self.scope.variables())

  def module_paths(self, rngs: Any, *args: Any, show_repeated: bool = False,
                   mutable: CollectionFilter = _NOT_INTERMEDIATES,
                   **kwargs: Any) -> dict[str, Module]:
    """``{"path/of/submodule": unbound copy}`` of every module that ``init`` would call
    (``""`` is this one); nothing is computed (``jax.eval_shape``)."""
    from flaxen.linen.summary import module_paths  # summary imports this module

    return module_paths(self, rngs, *args, show_repeated=show_repeated, mutable=mutable,
                        **kwargs)

  def tabulate(self, rngs: Any, *args: Any, depth: int | None = None,
               show_repeated: bool = False, mutable: CollectionFilter = _NOT_INTERMEDIATES,
               console_kwargs: Mapping[str, Any] | None = None,
               table_kwargs: Mapping[str, Any] = _EMPTY, column_kwargs: Mapping[str, Any] = _EMPTY,
               compute_flops: bool = False, compute_vjp_flops: bool = False,
               **kwargs: Any) -> str:
    """A summary table of this module's calls and variables; the options are those of
    :func:`nn.tabulate`, and ``args`` / ``kwargs`` go to ``init`` (``method=`` among them)."""
    from flaxen.linen.summary import module_tabulate

    return module_tabulate(self, rngs, *args, depth=depth, show_repeated=show_repeated,
                           mutable=mutable, console_kwargs=console_kwargs,
                           table_kwargs=table_kwargs, column_kwargs=column_kwargs,
                           compute_flops=compute_flops, compute_vjp_flops=compute_vjp_flops,
                           **kwargs)

  # ------------------------------------------------------------ variables and rngs

  def _bound_scope(self, what: str) -> Scope:
    scope = self.scope
    if scope is None:
      raise errors.UnboundModuleError(type(self).__name__, what)
    state = self._state
    if not state.setup_done:
      self._run_setup()
    return scope

  def _creating(self, kind: str, name: str) -> Scope:
    scope = self._bound_scope(f"{kind} {name!r}")
    state = self._state
    if not (state.in_setup or state.compact_depth):
      raise errors.InitializationOutsideSetupError(type(self).__name__, kind, name)
    return scope

  @property
  def variables(self) -> dict[str, Any]:
    """This module's variables, ``{collection: subtree}``."""
    return self._bound_scope("the variables").variables()

  @property
  def path(self) -> tuple[str, ...]:
    """The names from the root module to this one."""
    return self._bound_scope("the path").path

  def param(self, name: str, init_fn: Callable[..., Any], *init_args: Any, unbox: bool = True,
            **init_kwargs: Any) -> Any:
    """Read param ``name``, or create it with ``init_fn(make_rng('params'), *init_args)``."""
    scope = self.scope
    if scope is None or not self._state.compact_depth:
      scope = self._creating("param", name)
    else:
      self._reserve("param", name, "params")
    return scope.param(name, init_fn, *init_args, unbox=unbox, **init_kwargs)

  def variable(self, col: str, name: str, init_fn: Callable[..., Any] | None = None,
               *init_args: Any, unbox: bool = True, **init_kwargs: Any) -> Variable:
    """The :class:`Variable` ``name`` of ``col``, created with ``init_fn(*init_args)``."""
    scope = self.scope
    if scope is None or not self._state.compact_depth:
      scope = self._creating("variable", name)
    else:
      self._reserve("variable", name, col)
    return scope.variable(col, name, init_fn, *init_args, unbox=unbox, **init_kwargs)

  def _reserve(self, kind: str, name: str, col: str) -> None:
    """One compact call declares each name once per collection: a second variable of the
    same name in the same collection (or a submodule of that name) is a collision, not a
    read of the first; the same name in another collection is fine (as in Flax)."""
    taken = self._state.call_names
    if (col, name) in taken or name in taken:
      raise errors.NameInUseError(kind, name, _describe(self))
    taken.add((col, name))
    taken.add(("", name))  # so that a submodule of this name is caught in _bind_as

  def has_variable(self, col: str, name: str) -> bool:
    return self._bound_scope("variables").has_variable(col, name)

  def get_variable(self, col: str, name: str, default: Any = None) -> Any:
    return self._bound_scope("variables").get_variable(col, name, default)

  def put_variable(self, col: str, name: str, value: Any) -> None:
    self._bound_scope("variables").put_variable(col, name, value)

  def is_mutable_collection(self, col: str) -> bool:
    return self._bound_scope("collections").is_mutable_collection(col)

  def is_initializing(self) -> bool:
    """True inside ``init`` / ``init_with_output``."""
    return bool(self._bound_scope("flags").get_flag("initializing", False))

  def make_rng(self, name: str = "params") -> Any:
    """A fresh key of stream ``name``, unique to this module path and call count."""
    return self._bound_scope(f"rng stream {name!r}").make_rng(name)

  def has_rng(self, name: str) -> bool:
    return self._bound_scope("rngs").has_rng(name)

  def sow(self, col: str, name: str, value: Any,
          reduce_fn: Callable[[Any, Any], Any] = lambda xs, x: (*xs, x),
          init_fn: Callable[[], Any] = lambda: ()) -> bool:
    """Record ``value`` in ``col`` if it is mutable (by default, append to a tuple).

    Returns:
      Whether the value was stored.
    """
    scope = self._bound_scope(f"collection {col!r}")
    if not scope.is_mutable_collection(col):
      return False
    current = scope.get_variable(col, name) if scope.has_variable(col, name) else init_fn()
    scope.put_variable(col, name, reduce_fn(current, value))
    return True

  def perturb(self, name: str, value: Any, collection: str = "perturbations") -> Any:
    """``value`` plus the perturbation ``name`` (zeros, created when ``collection`` is mutable).

    Taking the gradient with respect to the perturbations collection gives the gradient
    with respect to this intermediate value.
    """
    scope = self._bound_scope(f"collection {collection!r}")
    if scope.is_mutable_collection(collection) and not scope.has_variable(collection, name):
      scope.put_variable(collection, name, jnp.zeros_like(value))
    if scope.has_variable(collection, name):
      value = value + scope.get_variable(collection, name)
    return value


_BASE_NAMES = frozenset(vars(Module))


def _hashable(value: Any) -> Any:
  if isinstance(value, list | tuple):
    return tuple(_hashable(v) for v in value)
  if isinstance(value, dict):
    return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
  try:
    hash(value)
  except TypeError:
    return id(value)
  return value


def _describe(module: Module) -> str:
  scope = module.scope
  return f"{type(module).__name__} at {scope.path_text if scope else '(unbound)'}"


def _resolve_method(module: Module, method: Any) -> Callable[..., Any]:
  if method is None:
    if not callable(module):
      raise errors.ApplyModuleInvalidMethodError("__call__", type(module).__name__)
    return type(module).__call__
  if isinstance(method, str):
    fn = getattr(type(module), method, None)
    if fn is None and isinstance(module.__dict__.get(method), Module):
      # a submodule held in a field: call it on the bound clone, forwarding the arguments
      name = method
      return lambda self, *args, **kwargs: getattr(self, name)(*args, **kwargs)
    if fn is None or not callable(fn):
      raise errors.ApplyModuleInvalidMethodError(method, type(module).__name__)
    return fn
  if getattr(method, "__self__", None) is not None and isinstance(method.__self__, Module):
    return method.__func__
  if not callable(method):
    raise errors.ApplyModuleInvalidMethodError(method, type(module).__name__)
  return method


def _run(module: Module, fn: Callable[..., Any], variables: Mapping[str, Any], rngs: Any,
         mutable: CollectionFilter, flags: Mapping[str, Any] | None, args: Iterable[Any],
         kwargs: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
  scope = core_scope.bind(variables, rngs, mutable, flags)
  # field submodules bound elsewhere (a module's init called from inside another) are
  # copied, so that this call's variables hold them
  bound = module.clone(parent=scope, _deep_clone=True)
  if bound.scope is not scope:
    raise errors.IncorrectPostInitOverrideError(type(module).__name__)
  try:
    y = fn(bound, *args, **kwargs)
    mutated = scope.mutable_variables() if mutable is not False else {}
  finally:
    scope.invalidate()
    scope.release()  # the bound modules' cycles must not keep the variables alive
  return y, mutated


def _unbound_copies(value: Any, memo: dict, reset_names: bool = False) -> Any:
  """``value`` with every Module in it (in lists, tuples, dicts too) an unbound copy; one
  copy per module object (``memo``: id -> (module, copy)), so sharing is kept."""
  if isinstance(value, Module):
    if value.scope is None and value.parent is None and not reset_names:
      return value
    hit = memo.get(id(value))
    if hit is None:
      copy = value.clone(parent=None, _deep_clone=memo, _reset_names=reset_names)
      hit = memo[id(value)] = (value, copy)
    return hit[1]
  if isinstance(value, list | tuple) and any(isinstance(v, Module | list | tuple | dict)
                                             for v in value):
    items = [_unbound_copies(v, memo, reset_names) for v in value]
    return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
  if isinstance(value, dict) and any(isinstance(v, Module | list | tuple | dict)
                                     for v in value.values()):
    return {k: _unbound_copies(v, memo, reset_names) for k, v in value.items()}
  return value


def merge_param(name: str, a: Any, b: Any) -> Any:
  """The one of ``a`` (module attribute) and ``b`` (call argument) that is not None.

  Raises:
    flaxen.errors.MergeParamError: both or neither are given.
  """
  if (a is None) == (b is None):
    raise errors.MergeParamError(name, both=a is not None)
  return a if a is not None else b
