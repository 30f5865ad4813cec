"""``nnx.jit``: ``jax.jit`` for functions that take and mutate graph objects.

Per call, the expensive part of carrying graph objects through ``jax.jit`` is the graph walk
that finds their Variables and builds the GraphDef. ``nnx.jit`` does it once per input
structure: a cache keyed by the identity of the graph arguments (and the argument
pytree's structure) remembers the walk (the GraphDef and the Variables in order). An entry
is valid while the process-wide structural epoch has not moved; when it has, the versions
of the entry's objects are compared once. A hit costs one read per Variable, the compiled
call, and one write per Variable. A structural change made inside the function comes back
as a changed GraphDef, is replayed onto the caller's objects, and drops the entry.

Entries hold weak references to the graph arguments and are removed when one dies, and at
most ``_MAX_ENTRIES`` are kept per function.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> counter = nnx.Variable(jnp.array(0))
>>> @nnx.jit
... def step(c, x):
...   c.value += x
...   return c.value * 2
>>> int(step(counter, 1)), int(step(counter, 2)), int(counter.value)
(2, 6, 3)
"""

from __future__ import annotations

import functools
import inspect
import operator
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import jax

from flaxen import errors
from flaxen.nnx import epoch
from flaxen.nnx.graph import flatten
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.transforms import lift, tree_mode
from flaxen.nnx.transforms.leaks import check_no_leaks
from flaxen.nnx.transforms.refs import restore_refs, take_refs
from flaxen.nnx.transforms.state_sharding import StateSharding, constrain, state_shardings
from flaxen.nnx.variables import Variable

__all__ = ["jit", "JitWrapped"]

_MAX_ENTRIES = 64


class _OutInfo:
  """Static facts about a traced call's output, carried out of jax.jit as a static leaf."""

  __slots__ = ("update", "treedef", "node_positions", "written", "refs")

  def __init__(self, update: lift.GraphUpdate, treedef: Any, node_positions: tuple[int, ...],
               written: tuple[int, ...], refs: bool = False):
    self.update = update
    self.refs = refs  # the output holds jax.Refs as markers (transforms/refs.py)
    self.treedef = treedef  # None: the output held no graph node and leaves jit as it is
    self.node_positions = node_positions
    self.written = written  # indices of the state values returned (all, unless trimmed)


jax.tree_util.register_static(_OutInfo)


class _Entry(epoch.Recorded):
  """One cached graph walk: what the arguments' graph looked like, and its Variables."""

  __slots__ = ("node_refs", "fn", "groups", "arg_groups", "slots", "cached", "info",
               "written")

  def valid(self, nodes: list) -> bool:
    for ref, node in zip(self.node_refs, nodes, strict=True):
      if ref() is not node:
        return False
    return self.current()


class JitWrapped:
  """The callable ``nnx.jit`` returns; also a descriptor, so it works on methods."""

  def __init__(self, fun: Callable, *, in_shardings: Any, out_shardings: Any,
               static_argnums: int | Sequence[int] | None,
               static_argnames: str | Sequence[str] | None,
               donate_argnums: int | Sequence[int] | None,
               donate_argnames: str | Sequence[str] | None, graph: bool = True,
               graph_updates: bool = True, **jit_kwargs: Any):
    tree_mode.check_not_bound_method(fun, "nnx.jit")
    functools.update_wrapper(self, fun)
    self.fun = fun
    # Without graph updates only Variable values come back (tree_mode.py); tree mode also
    # rejects a Variable reached twice.
    self._functional = not (graph and graph_updates)
    self._tree = not graph
    if in_shardings is not None:
      tree_mode.check_no_graph_prefix(in_shardings, "nnx.jit", "in_shardings")
      if self._functional:
        tree_mode.check_no_prefix_filter(in_shardings, StateSharding, "nnx.jit",
                                         "in_shardings")
    self.out_shardings = out_shardings
    self._state_sharding = any(isinstance(x, StateSharding) for x in jax.tree.leaves(
      in_shardings, is_leaf=lambda x: isinstance(x, StateSharding)))
    self._entries: OrderedDict = OrderedDict()
    self._compiled: OrderedDict = OrderedDict()  # ctx -> jax.jit of the pure function
    # jax.jit cannot read names off the pure function's (*args, **kwargs) signature: give it
    # both forms, resolved against the user's function, as it would have found them.
    static_argnums, static_argnames = _by_position_and_name(fun, static_argnums,
                                                            static_argnames)
    donate_argnums, donate_argnames = _by_position_and_name(fun, donate_argnums,
                                                            donate_argnames)
    options = dict(static_argnums=static_argnums, static_argnames=static_argnames,
                   donate_argnums=donate_argnums, donate_argnames=donate_argnames,
                   in_shardings=in_shardings, **jit_kwargs)
    self._options = {k: v for k, v in options.items() if v is not None}
    # A donated buffer must come back as an output, so with donation nothing is trimmed.
    self._may_trim = (donate_argnums is None and donate_argnames is None
                      and not self._state_sharding)
    self._static = (_as_tuple(static_argnums), _as_tuple(static_argnames))

  def __get__(self, obj: Any, objtype: Any = None) -> Callable:
    return self if obj is None else functools.partial(self, obj)

  def _pure_functional(self, ctx: tuple, *args: Any, **kwargs: Any) -> tuple:
    """The traced function without graph updates: returns the new values of the input
    Variables it replaced, and the output with its graph objects taken apart."""
    graphdef, treedef, positions = ctx
    leaves = treedef.flatten_up_to((args, kwargs))
    values = [v for p in positions for v in leaves[p]]
    (args, kwargs), inner, _ = lift.rebuild(graphdef, values, leaves, treedef, positions)
    snapshot = tree_mode.Snapshot(inner)
    out = self.fun(*args, **kwargs)
    if self.out_shardings is not None:
      out = constrain(out, self.out_shardings)
    out, has_refs = take_refs(out, leaves)
    written, new_values = snapshot.updates(self._may_trim)
    out, nodes = tree_mode.pack_output(out, snapshot.variable_ids(), "nnx.jit", self._tree)
    if nodes is not None:
      check_no_leaks(nodes.graphdef, [*values, *leaves], "nnx.jit")
    return out, new_values, _OutInfo(None, nodes, (), written, has_refs)

  def _pure(self, ctx: tuple, *args: Any, **kwargs: Any) -> tuple:
    graphdef, treedef, positions = ctx
    leaves = treedef.flatten_up_to((args, kwargs))
    values = [v for p in positions for v in leaves[p]]
    (args, kwargs), inner, refs = lift.rebuild(graphdef, values, leaves, treedef, positions)
    out = self.fun(*args, **kwargs)
    if self.out_shardings is not None:
      out = constrain(out, self.out_shardings)
    out, has_refs = take_refs(out, leaves)
    out_leaves, out_treedef, out_positions, out_nodes = lift.take_nodes(out)
    new_values, update = lift.capture(inner, refs, graphdef, out_nodes)
    check_no_leaks(update.graphdef, [*values, *leaves], "nnx.jit")
    written = tuple(range(len(new_values)))
    if update.same and self._may_trim and len(values) == sum(isinstance(r, Variable)
                                                              for r in refs):
      # Only values the function replaced leave the computation: unchanged state (all of
      # it, in an inference call) costs no output and no write-back.
      written = tuple(j for j in written if new_values[j] is not values[j])
      new_values = [new_values[j] for j in written]
    if not out_positions:  # jax.jit rebuilds the output itself: no unflatten after the call
      out_leaves, out_treedef = out, None
    return out_leaves, new_values, _OutInfo(update, out_treedef, out_positions, written,
                                            has_refs)

  def _function(self, *ctx: Any, options: dict | None = None) -> Callable:
    """One jax.jit per graph structure (shared by all objects of that structure), so a call
    passes no static arguments and stays on jax.jit's fast path."""
    fn = self._compiled.get(ctx)
    if fn is None:
      pure = self._pure_functional if self._functional else self._pure
      fn = self._compiled[ctx] = jax.jit(functools.partial(pure, ctx),
                                         **(options or self._options))
      if len(self._compiled) > _MAX_ENTRIES:
        self._compiled.popitem(last=False)
    return fn

  def _entry(self, key: tuple, nodes: list, treedef: Any, positions: tuple) -> _Entry:
    graphdef, leaves, paths, refs = flatten(tuple(nodes))
    entry = _Entry()
    options = None
    if self._state_sharding:
      in_specs, state_specs = state_shardings(self._options["in_shardings"], treedef,
                                               positions, leaves, paths)
      # the state comes back with the shardings it went in with (nothing is trimmed)
      options = {**self._options, "in_shardings": in_specs,
                 "out_shardings": (None, state_specs, None)}
    entry.fn = self._function(graphdef, treedef, positions, options=options)
    entry.cached = all(isinstance(x, Variable) for x in leaves)
    # On the fast path values are read from and written to the Variables' __dict__s
    # directly: a dict lookup is the cheapest attribute access Python has.
    slots = [x.__dict__ for x in leaves] if entry.cached else leaves
    entry.groups = [(p, []) for p in positions]
    for path, slot in zip(paths, slots, strict=True):
      entry.groups[path[0]][1].append(slot)
    entry.slots = slots
    entry.info = entry.written = None
    entry.record(refs)
    if entry.cached:  # raw array leaves must be re-read by a fresh walk on every call
      drop = functools.partial(_drop, self._entries, key)
      entry.node_refs = [weakref.ref(n, drop) for n in nodes]
      self._entries[key] = entry
      if len(self._entries) > _MAX_ENTRIES:
        self._entries.popitem(last=False)
    return entry

  def _check_static(self, args: tuple, kwargs: dict) -> None:
    """Graph nodes cannot be static: their state would be hashed instead of traced."""
    nums, names = self._static
    static = [(i, args[i]) for i in nums if -len(args) <= i < len(args)]
    static += [(n, kwargs[n]) for n in names if n in kwargs]
    for where, value in static:
      for leaf in jax.tree.leaves(value, is_leaf=lambda x: isinstance(x, _NODE_TYPES)):
        if isinstance(leaf, _NODE_TYPES):
          raise errors.StaticGraphNodeError("jit", where, leaf)

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    if self._static != ((), ()):
      self._check_static(args, kwargs)
    # The common call (positional graph objects, arrays and flat dicts of arrays) is keyed
    # by the identities of its graph objects (and the dicts' keys): an entry lives only
    # while those objects do (a weakref callback drops it), so an id in the key can only be
    # the object that made it.
    if not kwargs:
      key = []
      for a in args:
        if isinstance(a, _NODE_TYPES):
          key.append(id(a))
        elif type(a) is _ARRAY_IMPL:
          key.append(0)
        elif type(a) is dict and _all_arrays(a.values()):
          key.append(tuple(a))
        else:
          break
      else:
        key = tuple(key)
        entry = self._entries.get(key)
        if entry is not None and entry.current():
          call_args = list(args)
          for i, group in entry.arg_groups:
            call_args[i] = list(map(_raw_of, group))
          out_leaves, values, info = entry.fn(*call_args)
          if info is entry.info:  # the same trace as last time: state structure unchanged
            for slot, value in zip(entry.written, values, strict=True):
              slot["_raw"] = value
            return out_leaves if info.treedef is None else info.treedef.unflatten(out_leaves)
          nodes = [args[i] for i, _ in entry.arg_groups]
          return self._finish(entry, key, nodes, out_leaves, values, info, (args, kwargs))
        return self._call(key, args, kwargs)
    return self._call(None, args, kwargs)

  def _call(self, key: tuple | None, args: tuple, kwargs: dict) -> Any:
    """A call the fast path could not take: a new structure, or arguments it does not key."""
    entry, key, nodes, pure_args, pure_kwargs = self._prepare(key, args, kwargs)
    out_leaves, values, info = entry.fn(*pure_args, **pure_kwargs)
    return self._finish(entry, key, nodes, out_leaves, values, info, (args, kwargs))

  def _prepare(self, key: tuple | None, args: tuple, kwargs: dict) -> tuple:
    """``(entry, key, graph args, pure args, pure kwargs)`` for a call."""
    leaves, treedef, positions = lift.find_arg_nodes(args, kwargs)
    nodes = [leaves[p] for p in positions]
    fast = key is not None
    if not fast:
      key = (treedef, *map(id, nodes))
    entry = self._entries.get(key)
    if entry is None or not entry.valid(nodes):
      if self._tree:
        tree_mode.check_unique((args, kwargs), "nnx.jit")
      entry = self._entry(key, nodes, treedef, positions)
      if fast:  # the key holds an id where each graph argument is
        indices = [i for i, k in enumerate(key) if type(k) is int and k]
        entry.arg_groups = [(i, g) for i, (_, g) in zip(indices, entry.groups, strict=True)]
    read = _read_slots if entry.cached else _read_leaves
    for p, group in entry.groups:
      leaves[p] = read(group)
    args, kwargs = treedef.unflatten(leaves)
    return entry, key, nodes, args, kwargs

  def lower(self, *args: Any, **kwargs: Any) -> _Lowered:
    """``jax.jit(...).lower`` for these arguments; ``.compile()`` of the result is called
    with the same kind of arguments (graph objects included) and updates them."""
    if self._static != ((), ()):
      self._check_static(args, kwargs)
    entry, _, _, pure_args, pure_kwargs = self._prepare(None, args, kwargs)
    return _Lowered(self, entry.fn.lower(*pure_args, **pure_kwargs))

  def _finish(self, entry: _Entry, key: tuple, nodes: list, out_leaves: list, values: list,
              info: _OutInfo, call: tuple) -> Any:
    """Writes a call's results back; a new trace's output facts are kept for the next.
    ``call``: the caller's ``(args, kwargs)`` (where its jax.Refs are)."""
    out = self._write_back(entry, key, nodes, out_leaves, values, info)
    if info.refs:  # never on the fast path: entry.info is not kept for such a trace
      out = restore_refs(out, lift.find_arg_nodes(*call)[0])
    return out

  def _write_back(self, entry: _Entry, key: tuple, nodes: list, out_leaves: list,
                  values: list, info: _OutInfo) -> Any:
    if self._functional:
      written = [entry.slots[j] for j in info.written]
      if entry.cached and not info.refs:
        entry.info, entry.written = info, written
      else:  # the slots are the leaves themselves; only Variables are written
        written = [x.__dict__ for x in written]
      for slot, value in zip(written, values, strict=True):
        slot["_raw"] = value
      return out_leaves if info.treedef is None else info.treedef.unflatten(out_leaves)
    if info.update.same and entry.cached:
      written = [entry.slots[j] for j in info.written]
      if not info.refs:
        entry.info, entry.written = info, written
      for slot, value in zip(written, values, strict=True):
        slot["_raw"] = value
    else:
      self._entries.pop(key, None)
      out_nodes = lift.apply(info.update, values, nodes)
      for i, node in zip(info.node_positions, out_nodes, strict=True):
        out_leaves[i] = node
    return out_leaves if info.treedef is None else info.treedef.unflatten(out_leaves)


class _Lowered:
  """A lowered ``nnx.jit`` call: JAX's ``Lowered`` (``as_text``, ``cost_analysis``...)
  whose ``compile`` keeps the graph handling."""

  def __init__(self, wrapped: JitWrapped, lowered: Any):
    self.wrapped, self.lowered = wrapped, lowered

  def compile(self, *args: Any, **kwargs: Any) -> _Compiled:
    return _Compiled(self.wrapped, self.lowered.compile(*args, **kwargs))

  def __getattr__(self, name: str) -> Any:
    return getattr(self.lowered, name)


class _Compiled:
  """A compiled ``nnx.jit`` call, run on graph objects like the jitted function."""

  def __init__(self, wrapped: JitWrapped, compiled: Any):
    self.wrapped, self.compiled = wrapped, compiled

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    wrapped = self.wrapped
    entry, key, nodes, pure_args, pure_kwargs = wrapped._prepare(None, args, kwargs)
    out_leaves, values, info = self.compiled(*pure_args, **pure_kwargs)
    return wrapped._finish(entry, key, nodes, out_leaves, values, info, (args, kwargs))

  def __getattr__(self, name: str) -> Any:
    return getattr(self.compiled, name)


_raw_of = operator.itemgetter("_raw")
_ARRAY_IMPL, _NODE_TYPES = lift.ARRAY_IMPL, lift.NODE_TYPES


def _as_tuple(x: Any) -> tuple:
  return () if x is None else (x,) if isinstance(x, int | str) else tuple(x)


def _by_position_and_name(fun: Callable, nums: Any, names: Any) -> tuple[Any, Any]:
  """``(argnums, argnames)`` completed from ``fun``'s signature (each ``None`` if empty)."""
  if nums is None and names is None:
    return None, None
  nums, names = set(_as_tuple(nums)), set(_as_tuple(names))
  try:
    params = list(inspect.signature(fun).parameters.values())
  except (TypeError, ValueError):
    params = []
  positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
  nums |= {i for i, n in enumerate(positional) if n in names}
  names |= {positional[i] for i in nums if 0 <= i < len(positional)
            and params[i].kind is not inspect.Parameter.POSITIONAL_ONLY}
  return tuple(sorted(nums)) or None, tuple(sorted(names)) or None


def _all_arrays(values: Any) -> bool:
  for v in values:
    if type(v) is not _ARRAY_IMPL:
      return False
  return True


def _read_slots(group: list) -> list:
  return list(map(_raw_of, group))


def _read_leaves(group: list) -> list:
  return [lift.raw(x) for x in group]


def _drop(entries: OrderedDict, key: tuple, _: Any) -> None:
  entries.pop(key, None)


def jit(fun: Callable | None = None, *, in_shardings: Any = None, out_shardings: Any = None,
        static_argnums: int | Sequence[int] | None = None,
        static_argnames: str | Sequence[str] | None = None,
        donate_argnums: int | Sequence[int] | None = None,
        donate_argnames: str | Sequence[str] | None = None, keep_unused: bool = False,
        device: Any = None, backend: str | None = None, inline: bool = False,
        graph: bool | None = None, graph_updates: bool | None = None) -> Any:
  """Compiles ``fun`` like ``jax.jit``; graph objects among its arguments are updated.

  Graph objects (Modules, Rngs, Optimizers, Variables...) may appear anywhere in the
  arguments. In graph mode with graph updates, whatever the function does to them (new
  values, new or replaced attributes, changed shared references) is applied to the
  caller's objects after the call, and outputs may be input objects. Without graph updates
  (``graph_updates=False``, or tree mode ``graph=False``) only the new values of the input
  Variables come back; graph objects in the output are new objects, and returning an
  input Variable is an error. Tree mode also rejects a Variable passed twice. Other
  arguments and options behave as in ``jax.jit``; the ``out_shardings`` constrain the
  function's output.

  Args:
    graph: graph mode (True) or tree mode (False); default ``nnx.set_graph_mode``'s value.
    graph_updates: whether structural changes propagate (graph mode only); default
      ``nnx.set_graph_updates``'s value.

  Returns:
    The compiled function (or a decorator, when ``fun`` is omitted).
  """
  graph = resolve_graph(graph)
  graph_updates = resolve_graph_updates(graph_updates)
  options = dict(in_shardings=in_shardings, out_shardings=out_shardings,
                 static_argnums=static_argnums, static_argnames=static_argnames,
                 donate_argnums=donate_argnums, donate_argnames=donate_argnames,
                 keep_unused=keep_unused or None, device=device, backend=backend,
                 inline=inline or None)
  if fun is None:
    return functools.partial(jit, **options, graph=graph, graph_updates=graph_updates)
  return JitWrapped(fun, **options, graph=graph, graph_updates=graph and graph_updates)
