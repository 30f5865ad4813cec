"""The functional variable store: scopes over collections of variables and rng streams.

Variables are nested dicts ``collection -> module path... -> variable name -> value``. A
:class:`Scope` is one node of that path; all scopes of one ``bind`` share a root that holds
the collections, the mutability filter, the rng streams and flags. Inputs are never
mutated: mutable collections are copied (dict structure only) when bound, immutable ones
are read in place. Each scope caches its own sub-dict per collection, so a lookup is one
or two dict reads.

Rngs: ``make_rng(stream)`` folds a 32-bit hash of (scope path, per-scope counter) into the
stream's key: keys depend only on where and how often they are drawn, never on the order
in which unrelated modules run, and each draw costs one ``fold_in``.

Lifted transforms can snapshot a scope with ``variables()`` and ``make_rng`` per stream,
rebuild a fresh scope inside the transformed function with :func:`bind`, and write the
mutated collections back with :meth:`Scope.put_variables`.

>>> import jax, jax.numpy as jnp
>>> from flaxen.core import init, apply
>>> def f(scope, x):
...   w = scope.param("w", jax.nn.initializers.ones, (x.shape[-1], 2))
...   return x @ w
>>> y, variables = init(f)(jax.random.key(0), jnp.ones((1, 3)))
>>> jax.tree.map(jnp.shape, variables)
{'params': {'w': (3, 2)}}
>>> apply(f)(variables, jnp.ones((1, 3))).tolist()
[[3.0, 3.0]]
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.core import EvalTrace, trace_ctx  # private, as in nnx.variables

from flaxen import errors
from flaxen.core import meta
from flaxen.core.filters import CollectionFilter, check_filter, in_filter
from flaxen.core.frozen_dict import unfreeze
from flaxen.errors.base import short_repr

__all__ = ["Scope", "Variable", "bind", "init", "apply"]

T = TypeVar("T")
_KEY_STRUCT = jax.ShapeDtypeStruct((2,), jnp.uint32)
# init_fn -> {(args, kwargs): abstract result}; weak so that it never keeps a closure (and
# whatever model it references) alive, bounded per init_fn.
_SHAPE_CACHE: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()
_SHAPE_CACHE_SIZE = 64
# Initializers that ignore their key: param() gives them the stream key without a fold_in,
# which keeps init's traced program (and trace time) smaller.
_KEYLESS_INITS = (jax.nn.initializers.zeros, jax.nn.initializers.ones)


class _Root:
  """State shared by every scope of one bind."""

  __slots__ = ("store", "mutable", "rngs", "flags", "valid", "lifted", "_mutable_cache",
               "trace", "adopted", "released_traced", "rng_skip")

  def __init__(self, store, mutable, rngs, flags, rng_skip=0):
    self.store = store
    self.mutable = mutable
    self.rngs = rngs
    self.flags = flags
    # Leading path names left out of rng derivation: a root rebuilt by nn.jit gets keys
    # already drawn at its place, so its draws fold only the path below it (and a trace
    # shared by sibling modules does not depend on which of them traced it).
    self.rng_skip = rng_skip
    self.valid = True
    # The name of the lifted transform (e.g. "vmap") tracing a snapshot of this bind, if
    # any: its modules are then invisible to the transform and must not be called.
    self.lifted: str | None = None
    self._mutable_cache: dict[str, bool] = {}
    # The JAX trace the variables were last read in (at first, the one that bound them):
    # a bound module kept after the jax.jit / vmap call that bound it holds dead tracers.
    self.trace = trace_ctx.trace
    # Linen: {id(unbound module): (it, its bound copy)}, so that a module object used in
    # several places of one bind is adopted once and shared (filled lazily).
    self.adopted: dict[int, tuple[Any, Any]] | None = None
    self.released_traced = False  # released (see Scope.release) after a traced apply

  def check_trace(self, path: str) -> None:
    """Called when the current trace is another: outside every transform (where JAX, too,
    knows a tracer escaped), raises InvalidScopeError if the variables hold tracers."""
    now = trace_ctx.trace
    if self.released_traced or any(isinstance(x, jax.core.Tracer)
                                   for x in jax.tree.leaves(self.store)):
      if isinstance(now, EvalTrace):
        raise errors.InvalidScopeError(path, trace_ended=True)
      return  # maybe a nested transform of the live trace: JAX decides
    self.trace = now  # concrete variables: nothing to check until the next trace change

  def is_mutable(self, col: str) -> bool:
    hit = self._mutable_cache.get(col)
    if hit is None:
      hit = self._mutable_cache[col] = in_filter(self.mutable, col)
    return hit


class Scope:
  """One node of the variable tree: reads, writes and creates variables at its path."""

  __slots__ = ("root", "parent", "name", "path", "_cols", "_children", "_rng_counts", "_text",
               "_reserved")

  def __init__(self, variables: Any = None, rngs: Any = None, name: str | None = None,
               mutable: CollectionFilter = False, parent: Scope | None = None,
               path: tuple[str, ...] = (), debug_path: tuple[str, ...] = (),
               flags: Mapping[str, Any] | None = None):
    """``Scope(variables, rngs, mutable=...)``: a root scope, as :func:`bind` makes it.

    (Inside flaxen, ``Scope(root, parent, name)`` makes a child of an existing bind.)
    """
    del debug_path
    if isinstance(variables, _Root):
      root, parent = variables, rngs
    else:
      root = bind({} if variables is None else variables, rngs, mutable, flags, path).root
    self.root = root
    self.parent = parent
    self.name = name
    self.path: tuple[str, ...] = (*parent.path, name) if parent is not None else path
    self._cols: dict[str, Any] = {}
    self._children: dict[str, Scope] = {}
    self._rng_counts: dict[str, int] = {}
    self._text: str | None = None
    self._reserved: set[str] | None = None

  # ------------------------------------------------------------------ tree structure

  @property
  def path_text(self) -> str:
    """The path as ``/a/b`` (``/`` for the root)."""
    if self._text is None:
      self._text = "/" + "/".join(self.path)
    return self._text

  def push(self, name: str | None = None, prefix: str = "", reuse: bool = False) -> Scope:
    """The child scope ``name`` (or the next free ``{prefix}{i}``).

    Raises:
      flaxen.errors.NameInUseError: the child exists and ``reuse`` is false.
    """
    if name is None:
      i = 0
      while f"{prefix}{i}" in self._children:
        i += 1
      name = f"{prefix}{i}"
    child = self._children.get(name)
    if child is not None:
      if reuse:
        return child
      raise errors.NameInUseError("submodule", name, self.path_text)
    child = self._children[name] = Scope(self.root, self, name)
    return child

  def default_name(self, prefix: str) -> str:
    """The first free name ``{prefix}{i}`` among the children and reserved names."""
    i = 0
    while self.name_reserved(f"{prefix}{i}"):
      i += 1
    return f"{prefix}{i}"

  def name_reserved(self, name: str, col: str | None = None) -> bool:
    """Whether ``name`` is taken here (by a child scope or :meth:`reserve`)."""
    del col
    return name in self._children or (self._reserved is not None and name in self._reserved)

  def reserve(self, name: str, col: str | None = None) -> None:
    """Take ``name`` here, so that a later child or reservation of it is an error.

    Raises:
      flaxen.errors.NameInUseError: the name is taken already.
    """
    if self.name_reserved(name, col):
      raise errors.NameInUseError("name", name, self.path_text)
    if self._reserved is None:
      self._reserved = set()
    self._reserved.add(name)

  def child(self, fn: Callable[..., Any], name: str | None = None, prefix: str | None = None,
            named_call: bool = True, **partial_kwargs: Any) -> Callable[..., Any]:
    """``fn`` partially applied to a new child scope (named ``name`` or ``{prefix}{i}``)."""
    del named_call
    if name is None:
      name = self.default_name(prefix if prefix is not None else getattr(fn, "__name__", ""))
    scope = self.push(name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
      return fn(scope, *args, **{**partial_kwargs, **kwargs})

    return wrapper

  def rewound(self, rewind_rngs: bool = False) -> Scope:
    """A scope on the same variables and path whose names are all free again (so modules
    can be rebuilt on it); rng draws continue unless ``rewind_rngs``."""
    out = Scope(self.root, self.parent, self.name, self.path)
    if not rewind_rngs:
      out._rng_counts = dict(self._rng_counts)
    return out

  def temporary(self, name: str) -> Scope:
    """A child scope ``name`` that is not registered here (it reserves nothing)."""
    return Scope(self.root, self, name)

  def has_flag(self, key: str) -> bool:
    return key in self.root.flags

  @property
  def invalid(self) -> bool:
    """Whether the bind this scope belongs to has ended."""
    return not self.root.valid

  def invalidate(self) -> None:
    """Mark every scope of this bind unusable (called when apply returns)."""
    self.root.valid = False

  def release(self) -> None:
    """Drop the variables and rngs of this bind (the store, the keys, cached collections).

    Called when a Linen ``init``/``apply`` returns: bound modules refer to each other in
    cycles, so without it their arrays (tracers, under a transform) would stay alive until
    the next garbage collection.
    """
    root = self.root
    root.released_traced = not isinstance(root.trace, EvalTrace)  # its values were tracers
    root.store = {}
    root.rngs = {}
    stack = [self]
    while stack:
      scope = stack.pop()
      scope._cols = {}
      stack.extend(scope._children.values())

  def _check_valid(self) -> None:
    root = self.root
    if not root.valid:
      raise errors.InvalidScopeError(self.path_text)
    if root.lifted is not None:  # written or drawn from inside a transform that hides it
      raise errors.TransformedClosureError(f"the variables and rngs at {self.path_text!r}",
                                           root.lifted)

  # --------------------------------------------------------------------- collections

  def _read_col(self, col: str) -> Mapping | None:
    if self.root.trace is not trace_ctx.trace:
      self.root.check_trace(self.path_text)
    d = self._cols.get(col)
    if d is None:
      if self.parent is None:
        d = self.root.store.get(col)
      else:
        pd = self.parent._read_col(col)
        d = pd.get(self.name) if pd is not None else None
        if not isinstance(d, Mapping):
          return None
      if d is not None:
        self._cols[col] = d
    return d

  def _write_col(self, col: str) -> dict:
    d = self._read_col(col)
    if d is None:
      d = {}
      if self.parent is None:
        self.root.store[col] = d
      else:
        self.parent._write_col(col)[self.name] = d
      self._cols[col] = d
    return d  # type: ignore[return-value]

  def is_mutable_collection(self, col: str) -> bool:
    return self.root.is_mutable(col)

  def is_collection_empty(self, col: str) -> bool:
    """Whether the bound variables lack collection ``col`` altogether."""
    return col not in self.root.store

  def collections(self) -> tuple[str, ...]:
    return tuple(self.root.store)

  def variables(self) -> dict[str, Mapping]:
    """This scope's variables, ``{collection: subtree}`` (live views: do not mutate)."""
    root = self.root
    if root.trace is not trace_ctx.trace:
      root.check_trace(self.path_text)
    if not root.valid:  # its init/apply returned (and released the variables)
      raise errors.InvalidScopeError(self.path_text)
    out = {}
    for col in self.root.store:
      d = self._read_col(col)
      if d is not None:
        out[col] = d
    return out

  def mutable_variables(self) -> dict[str, Any]:
    """Every mutable collection of the root, as plain dicts."""
    return {c: v for c, v in self.root.store.items() if self.root.is_mutable(c)}

  # ----------------------------------------------------------------------- variables

  def has_variable(self, col: str, name: str) -> bool:
    d = self._read_col(col)
    return d is not None and name in d

  def get_variable(self, col: str, name: str, default: Any = None) -> Any:
    d = self._read_col(col)
    return d.get(name, default) if d is not None else default

  def put_variable(self, col: str, name: str, value: Any) -> None:
    """Store ``value`` (may be a whole subtree) as ``name`` in ``col``.

    Raises:
      flaxen.errors.ModifyScopeVariableError: ``col`` is not mutable.
    """
    if not self.root.is_mutable(col):
      raise errors.ModifyScopeVariableError(col, name, self.path_text)
    self._check_valid()
    self._write_col(col)[name] = value

  def put_variables(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
    """Write back ``{collection: {name: value-or-subtree}}`` (e.g. from a lifted call)."""
    for col, entries in updates.items():
      for name, value in entries.items():
        self.put_variable(col, name, value)
    self._forget_cached_cols()

  def _forget_cached_cols(self) -> None:
    for child in self._children.values():
      child._cols.clear()
      child._forget_cached_cols()

  def variable(self, col: str, name: str, init_fn: Callable[..., T] | None = None,
               *init_args, unbox: bool = True, **init_kwargs) -> Variable[T]:
    """The :class:`Variable` ``name`` of ``col``, created with ``init_fn`` if missing.

    Raises:
      flaxen.errors.ScopeCollectionNotFound / ScopeVariableNotFoundError: it is missing
        and cannot be created (immutable collection or no ``init_fn``).
    """
    if not self.has_variable(col, name):
      if init_fn is None or not self.root.is_mutable(col):
        if self.is_collection_empty(col):
          raise errors.ScopeCollectionNotFound(col, name, self.path_text)
        raise errors.ScopeVariableNotFoundError(name, col, self.path_text)
      self._check_name_free(name, "variable")
      self.put_variable(col, name, init_fn(*init_args, **init_kwargs))
    return Variable(self, col, name, unbox)

  def param(self, name: str, init_fn: Callable[..., T], *init_args, unbox: bool = True,
            **init_kwargs) -> T:
    """The param ``name``: read it, or create it with ``init_fn(make_rng('params'), ...)``.

    Raises:
      flaxen.errors.ScopeParamNotFoundError: missing and 'params' is immutable.
      flaxen.errors.ScopeParamShapeError: the stored shape differs from the initializer's.
    """
    if name in self._children:
      raise errors.NameInUseError("param", name, self.path_text, " by a submodule")
    d = self._read_col("params")
    if d is not None and name in d:
      value = d[name]
      _check_param_shape(self, name, value, init_fn, init_args, init_kwargs)
    else:
      if not self.root.is_mutable("params"):
        if self.is_collection_empty("params"):
          raise errors.ScopeCollectionNotFound("params", name, self.path_text)
        raise errors.ScopeParamNotFoundError(name, self.path_text)
      keyless = init_fn is _KEYLESS_INITS[0] or init_fn is _KEYLESS_INITS[1]
      key = self._next_rng("params", derive=not keyless)
      value = init_fn(key, *init_args, **init_kwargs)
      self.put_variable("params", name, value)
    if unbox and not isinstance(value, jax.Array):
      value = meta.unbox(value)
    return value

  def _check_name_free(self, name: str, kind: str) -> None:
    if name in self._children:
      raise errors.NameInUseError(kind, name, self.path_text, " by a submodule")

  # ---------------------------------------------------------------------------- rngs

  def has_rng(self, name: str) -> bool:
    return name in self.root.rngs

  def make_rng(self, name: str = "params") -> jax.Array:
    """A fresh key of stream ``name`` (falling back to 'params' when it is not given)."""
    return self._next_rng(name, derive=True)

  def _next_rng(self, name: str, derive: bool) -> jax.Array:
    """Count a draw of stream ``name``; ``derive=False`` skips the fold_in (for keyless
    initializers, whose key is never read) and returns the stream's key itself."""
    rngs = self.root.rngs
    key = rngs.get(name)
    if key is None:
      if "params" not in rngs:
        raise errors.InvalidRngError.missing(name, self.path_text, rngs)
      name, key = "params", rngs["params"]
    self._check_valid()
    count = self._rng_counts.get(name, 0)
    self._rng_counts[name] = count + 1
    if not derive:
      return key
    skip = self.root.rng_skip
    text = "/" + "/".join(self.path[skip:]) if skip else self.path_text
    data = zlib.crc32(f"{text}#{count}".encode())
    return jax.random.fold_in(key, np.uint32(data))

  @property
  def rng_counters(self) -> dict[str, int]:
    """How many keys each stream has drawn here (part of a lifted snapshot)."""
    return self._rng_counts

  def get_flag(self, key: str, default: Any = None) -> Any:
    return self.root.flags.get(key, default)


class Variable(Generic[T]):
  """A handle on one variable of a scope; ``.value`` reads and writes it.

  Boxed values (:class:`flaxen.core.meta.AxisMetadata`) are unboxed on read and the box is
  kept on write when ``unbox`` is true.
  """

  __slots__ = ("scope", "collection", "name", "unbox")

  def __init__(self, scope: Scope, collection: str, name: str, unbox: bool = True):
    self.scope = scope
    self.collection = collection
    self.name = name
    self.unbox = unbox

  @property
  def value(self) -> T:
    v = self.scope.get_variable(self.collection, self.name)
    if self.unbox and not isinstance(v, jax.Array):
      v = meta.unbox(v)
    return v

  @value.setter
  def value(self, value: T) -> None:
    if self.unbox:
      current = self.scope.get_variable(self.collection, self.name)
      if not isinstance(current, jax.Array) and current is not None:
        value = meta.replace_boxed(current, value)
    self.scope.put_variable(self.collection, self.name, value)

  def is_mutable(self) -> bool:
    return self.scope.is_mutable_collection(self.collection)

  def __repr__(self) -> str:
    return f"Variable({self.collection}{self.scope.path_text.rstrip('/')}/{self.name})"


# ------------------------------------------------------------------ param shape check


def _check_param_shape(scope, name, value, init_fn, args, kwargs) -> None:
  """Raise ScopeParamShapeError when ``value`` cannot be what ``init_fn`` would create.

  The common case (the first init arg is the shape itself) costs one tuple compare;
  otherwise the initializer is traced abstractly once per (init_fn, args) and cached.
  It never adds operations to the traced program.
  """
  shape = getattr(value, "shape", None)
  if shape is not None and args and type(args[0]) is tuple and args[0] == shape:
    return
  expected = _abstract_init(init_fn, args, kwargs)
  found_shapes = [tuple(np.shape(x)) for x in jax.tree.leaves(value)]
  init_shapes = [tuple(x.shape) for x in jax.tree.leaves(expected)]
  if found_shapes != init_shapes:
    one = lambda s: s[0] if len(s) == 1 else s
    raise errors.ScopeParamShapeError(name, scope.path_text, one(found_shapes), one(init_shapes))


def _abstract_init(init_fn, args, kwargs):
  try:
    per_fn = _SHAPE_CACHE.setdefault(init_fn, {})
    key = (args, tuple(sorted(kwargs.items())))
    hit = per_fn.get(key)
  except TypeError:  # init_fn not weakly referenceable, or unhashable args
    per_fn, hit = None, None
  if hit is None:
    hit = jax.eval_shape(lambda k: init_fn(k, *args, **kwargs), _KEY_STRUCT)
    if per_fn is not None:
      if len(per_fn) >= _SHAPE_CACHE_SIZE:
        per_fn.clear()
      per_fn[key] = hit
  return hit


# ------------------------------------------------------------------- entry points


def _is_key(x: Any) -> bool:
  dtype = getattr(x, "dtype", None)
  if dtype is None:
    return False
  if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
    return True
  return dtype == np.uint32 and tuple(x.shape[-1:]) == (2,)


def bind(variables: Mapping[str, Any], rngs: Mapping[str, Any] | None = None,
         mutable: CollectionFilter = False, flags: Mapping[str, Any] | None = None,
         path: tuple[str, ...] = (), relative_rngs: bool = False) -> Scope:
  """A root scope over ``variables`` (never mutated: mutable collections are copied).

  Args:
    variables: ``{collection: nested dict}`` (dicts or FrozenDicts).
    rngs: ``{stream: PRNG key}``, or one key for the "params" stream.
    mutable: the collections that may be written and created.
    flags: read with ``Scope.get_flag`` (e.g. ``initializing``).
    path: where this root sits in an enclosing model (a lifted transform rebuilding a
      submodule passes the submodule's path), used in error messages and rng derivation.
    relative_rngs: rng draws fold only the path below ``path`` (``rngs`` were drawn there).

  Raises:
    flaxen.errors.InvalidRngError: an rng is not a PRNG key, or ``rngs`` is not a dict.
    flaxen.errors.ApplyScopeInvalidVariablesStructureError: a collection is not a dict.
  """
  mutable = check_filter(mutable)
  if not isinstance(variables, Mapping):
    raise errors.ApplyScopeInvalidVariablesTypeError(variables)
  if rngs is None:
    rngs = {}
  elif not isinstance(rngs, Mapping):
    if not _is_key(rngs):
      raise errors.InvalidRngError(
        f"rngs must be a PRNG key or a dict of stream name -> PRNG key, got "
        f"{short_repr(rngs)}. Fix: pass rngs={{'params': key}} (or {{'dropout': key, ...}})."
      )
    rngs = {"params": rngs}
  for stream, key in rngs.items():
    if not _is_key(key):
      raise errors.InvalidRngError.not_a_key(stream, key)
  store: dict[str, Any] = {}
  for col, tree in variables.items():
    if not isinstance(tree, Mapping):
      raise errors.ApplyScopeInvalidVariablesStructureError(variables, col)
    mut = in_filter(mutable, col)
    store[col] = unfreeze(tree) if mut else tree
  path = tuple(path)
  root = _Root(store, mutable, dict(rngs), dict(flags or {}), len(path) if relative_rngs else 0)
  return Scope(root, path=path)


def apply(fn: Callable[..., Any], mutable: CollectionFilter = False,
          flags: Mapping[str, Any] | None = None) -> Callable[..., Any]:
  """``fn(scope, *args)`` as ``(variables, *args, rngs=None) -> y`` (or ``(y, mutated)``)."""

  def wrapper(variables, *args, rngs=None, **kwargs):
    scope = bind(variables, rngs, mutable, flags)
    try:
      y = fn(scope, *args, **kwargs)
    finally:
      scope.invalidate()
    if mutable is False:
      return y
    return y, scope.mutable_variables()

  return wrapper


def init(fn: Callable[..., Any], mutable: CollectionFilter = True,
         flags: Mapping[str, Any] | None = None) -> Callable[..., Any]:
  """``fn(scope, *args)`` as ``(rngs, *args) -> (y, variables)``; rngs may be one key."""

  def wrapper(rngs, *args, **kwargs):
    if not isinstance(rngs, Mapping):
      rngs = {"params": rngs}
    run = apply(fn, mutable, {**(flags or {}), "initializing": True})
    return run({}, *args, rngs=rngs, **kwargs)

  return wrapper

