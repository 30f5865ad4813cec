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
import operator
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import jax

from flaxen import errors
from flaxen.nnx import epoch
from flaxen.nnx.graph import flatten
from flaxen.nnx.transforms import lift
from flaxen.nnx.transforms.leaks import check_no_leaks
from flaxen.nnx.variables import Variable

__all__ = ["jit", "JitWrapped", "cached_partial"]

_MAX_ENTRIES = 64


class _OutInfo:
  """Static facts about a traced call's output, carried out of jax.jit as a static leaf."""

  __slots__ = ("update", "treedef", "node_positions", "written")

  def __init__(self, update: lift.GraphUpdate, treedef: Any, node_positions: tuple[int, ...],
               written: tuple[int, ...]):
    self.update = update
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
               donate_argnames: str | Sequence[str] | None, **jit_kwargs: Any):
    functools.update_wrapper(self, fun)
    self.fun = fun
    self.out_shardings = out_shardings
    self._entries: OrderedDict = OrderedDict()
    self._compiled: OrderedDict = OrderedDict()  # ctx -> jax.jit of the pure function
    options = dict(static_argnums=static_argnums, static_argnames=static_argnames,
                   donate_argnums=donate_argnums, donate_argnames=donate_argnames,
                   in_shardings=in_shardings, **jit_kwargs)
    self._options = {k: v for k, v in options.items() if v is not None}
    # A donated buffer must come back as an output, so with donation nothing is trimmed.
    self._may_trim = donate_argnums is None and donate_argnames is None
    self._static = (_as_tuple(static_argnums), _as_tuple(static_argnames))

  def __get__(self, obj: Any, objtype: Any = None) -> Callable:
    return self if obj is None else functools.partial(self, obj)

  def _pure(self, ctx: tuple, *args: Any, **kwargs: Any) -> tuple:
    graphdef, treedef, positions = ctx
    leaves = treedef.flatten_up_to((args, kwargs))
    values = [v for p in positions for v in leaves[p]]
    (args, kwargs), inner, refs = lift.rebuild(graphdef, values, leaves, treedef, positions)
    out = self.fun(*args, **kwargs)
    if self.out_shardings is not None:
      out = jax.lax.with_sharding_constraint(out, self.out_shardings)
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
    return out_leaves, new_values, _OutInfo(update, out_treedef, out_positions, written)

  def _function(self, *ctx: Any) -> Callable:
    """One jax.jit per graph structure (shared by all objects of that structure), so a call
    passes no static arguments and stays on jax.jit's fast path."""
    fn = self._compiled.get(ctx)
    if fn is None:
      fn = self._compiled[ctx] = jax.jit(functools.partial(self._pure, ctx), **self._options)
      if len(self._compiled) > _MAX_ENTRIES:
        self._compiled.popitem(last=False)
    return fn

  def _entry(self, key: tuple, nodes: list, treedef: Any, positions: tuple) -> _Entry:
    graphdef, leaves, paths, refs = flatten(tuple(nodes))
    entry = _Entry()
    entry.fn = self._function(graphdef, treedef, positions)
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
          return self._finish(entry, key, nodes, out_leaves, values, info)
        return self._call(key, args, kwargs)
    return self._call(None, args, kwargs)

  def _call(self, key: tuple | None, args: tuple, kwargs: dict) -> Any:
    """A call the fast path could not take: a new structure, or arguments it does not key."""
    leaves, treedef, positions = lift.find_arg_nodes(args, kwargs)
    nodes = [leaves[p] for p in positions]
    fast = key is not None
    if not fast:
      key = (treedef, *map(id, nodes))
    entry = self._entries.get(key)
    if entry is None or not entry.valid(nodes):
      entry = self._entry(key, nodes, treedef, positions)
      if fast:  # the key holds an id where each graph argument is
        indices = [i for i, k in enumerate(key) if type(k) is int and k]
        entry.arg_groups = [(i, g) for i, (_, g) in zip(indices, entry.groups, strict=True)]
    read = _read_slots if entry.cached else _read_leaves
    for p, group in entry.groups:
      leaves[p] = read(group)
    args, kwargs = treedef.unflatten(leaves)
    out_leaves, values, info = entry.fn(*args, **kwargs)
    return self._finish(entry, key, nodes, out_leaves, values, info)

  def _finish(self, entry: _Entry, key: tuple, nodes: list, out_leaves: list, values: list,
              info: _OutInfo) -> Any:
    """Writes a call's results back; a new trace's output facts are kept for the next."""
    if info.update.same and entry.cached:
      entry.info, entry.written = info, [entry.slots[j] for j in info.written]
      for slot, value in zip(entry.written, values, strict=True):
        slot["_raw"] = value
    else:
      self._entries.pop(key, None)
      out_nodes = lift.apply(info.update, values, nodes)
      for i, node in zip(info.node_positions, out_nodes, strict=True):
        out_leaves[i] = node
    return out_leaves if info.treedef is None else info.treedef.unflatten(out_leaves)


_raw_of = operator.itemgetter("_raw")
_ARRAY_IMPL, _NODE_TYPES = lift.ARRAY_IMPL, lift.NODE_TYPES


def _as_tuple(x: Any) -> tuple:
  return () if x is None else (x,) if isinstance(x, int | str) else tuple(x)


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
        device: Any = None, backend: str | None = None, inline: bool = False) -> Any:
  """Compiles ``fun`` like ``jax.jit``; graph objects among its arguments are updated.

  Graph objects (Modules, Rngs, Optimizers, Variables...) may appear anywhere in the
  arguments. Whatever the function does to them (new values, new or replaced attributes,
  changed shared references) is applied to the caller's objects after the call; outputs may
  contain graph objects. Other arguments and options behave as in ``jax.jit``; the
  ``out_shardings`` constrain the function's output.

  Returns:
    The compiled function (or a decorator, when ``fun`` is omitted).
  """
  options = dict(in_shardings=in_shardings, out_shardings=out_shardings,
                 static_argnums=static_argnums, static_argnames=static_argnames,
                 donate_argnums=donate_argnums, donate_argnames=donate_argnames,
                 keep_unused=keep_unused or None, device=device, backend=backend,
                 inline=inline or None)
  if fun is None:
    return functools.partial(jit, **options)
  return JitWrapped(fun, **options)


def cached_partial(f: Callable, *cached_args: Any) -> Callable:
  """``functools.partial(f, *cached_args)``, for graph objects passed on every call.

  ``nnx.jit`` already caches its graph walk per argument structure, so binding the
  arguments needs nothing more; the name exists for programs written against Flax.
  """
  return functools.partial(f, *cached_args)
