"""The functional API over graphs: split, merge, state, update, graphdef, clone, pop.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
>>> graphdef, params = nnx.split(model, nnx.Param)
>>> params.kernel.value.shape
(2, 3)
>>> copy = nnx.merge(graphdef, params)
>>> copy is model, bool((copy.kernel.value == model.kernel.value).all())
(False, True)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import jax

from flaxen.errors.nnx import (
  NotAGraphDefError,
  StatePathError,
  UnexpectedStateError,
  UnmatchedFilterError,
)
from flaxen.nnx import filterlib, graph_builder
from flaxen.nnx.graph import (
  GraphDef,
  cached_walk,
  child,
  enterable,
  flatten,
  gc_paused,
  leaves_by_path,
  unflatten,
  walk,
)
from flaxen.nnx.graph_mode import set_graph_mode
from flaxen.nnx.object import ARRAY_TYPES, Object
from flaxen.nnx.state import State
from flaxen.nnx.tree_mode import check_tree
from flaxen.nnx.variables import Variable, current_trace

__all__ = ["split", "merge", "state", "update", "graphdef", "clone", "pop", "iter_graph",
           "variables", "call"]

N = TypeVar("N")


def _walked(node: Any, graph: bool | None) -> tuple:
  """``cached_walk(node)``, checked to be a valid pytree in tree mode (``graph=False``)."""
  walked = cached_walk(node)
  if graph is False or (graph is None and not set_graph_mode.current_value()):
    check_tree(walked[0])
  return walked


def _copy(leaf: Any) -> Any:
  return leaf.copy() if isinstance(leaf, Variable) else leaf


def _matcher(filters: tuple) -> Any:
  """``(path, leaf) -> index of the first matching filter, or -1``, asked once per leaf
  class when the filters look at nothing but the class; ``None`` when all leaves match
  the first filter."""
  predicates = [filterlib.to_predicate(f) for f in filters]
  if type(predicates[0]) is filterlib.Everything:
    return None

  def first(path: tuple, leaf: Any) -> int:
    for i, pred in enumerate(predicates):
      if pred(path, leaf):
        return i
    return -1

  if not all(filterlib.by_type(p) for p in predicates):
    return first
  per_class: dict[type, int] = {}

  def cached(path: tuple, leaf: Any) -> int:
    i = per_class.get(type(leaf))
    if i is None:
      i = per_class[type(leaf)] = first(path, leaf)
    return i

  return cached


@gc_paused
def _states(walked: tuple, filters: tuple, exhaustive: bool, copy: bool = True
            ) -> list[State]:
  """One State per filter from ``graph.walk``'s output: each leaf (copied) goes to the
  first filter it matches, nested under its path."""
  _, leaves, paths, _, parents = walked[:5]
  if None in parents:  # a lone root leaf has no path to nest it under
    return _group(leaves, paths, filters, exhaustive, copy)
  match = _matcher(filters)
  if match is None and len(walked) > 5:  # the first filter takes all, from a cached walk
    return [_state_by_parent(_runs(walked), copy), *[State._wrap({}) for _ in filters[1:]]]
  states = [State._wrap({}) for _ in filters]
  where: list[dict[int, dict]] = [{} for _ in filters]  # id(parent path) -> its mapping
  last, last_g, m = None, -1, None  # siblings come one after another: skip the lookup
  new = object.__new__
  trace = current_trace()
  for leaf, path, parent in zip(leaves, paths, parents, strict=True):
    g = 0 if match is None else match(path, leaf)
    if parent is not last or g != last_g:
      if g < 0:
        if exhaustive:
          raise UnmatchedFilterError(path, leaf, filters)
        continue
      m = where[g].get(id(parent))
      if m is None:  # parents outlive this loop, so their ids are not reused
        m = where[g][id(parent)] = _mapping_at(states[g], parent)
      last, last_g = parent, g
    if copy and isinstance(leaf, Variable):  # leaf.copy(), inlined: this is the hot loop
      ld = leaf.__dict__
      leaf = new(type(leaf))
      d = leaf.__dict__
      d["_raw"], d["_meta"], d["_nnx_version"] = ld["_raw"], dict(ld["_meta"]), 0
      d["_trace"] = trace
    m[path[-1]] = leaf
  return states


def _runs(walked: tuple) -> list:
  """A cached walk's Variables grouped by parent: ``[(parent path, [(key, Variable)])]``,
  in walk order, made once per cached walk (in its box)."""
  box = walked[5]
  if box[0] is None:
    runs: list = []
    last = None
    for leaf, path, parent in zip(walked[1], walked[2], walked[4], strict=True):
      if parent is not last:
        runs.append((parent, []))
        last = parent
      runs[-1][1].append((path[-1], leaf))
    box[0] = runs
  return box[0]


def _state_by_parent(runs: list, copy: bool) -> State:
  """``_states`` for one filter that takes everything: each parent's mapping found once
  per run of siblings, no filter and no parent check per leaf."""
  state = State._wrap({})
  new, trace = object.__new__, current_trace()
  for parent, items in runs:
    m = _mapping_at(state, parent)
    if not copy:
      m.update(items)
      continue
    for key, leaf in items:  # leaf.copy(), inlined (a cached walk's leaves are Variables)
      ld = leaf.__dict__
      var = new(type(leaf))
      d = var.__dict__
      d["_raw"], d["_meta"], d["_nnx_version"] = ld["_raw"], dict(ld["_meta"]), 0
      d["_trace"] = trace
      m[key] = var
  return state


def _mapping_at(state: State, keys: tuple) -> dict:
  """The mapping of the sub-State at ``keys``, made (empty) where missing."""
  m = state._mapping
  for k in keys:
    sub = m.get(k)
    if sub is None:
      sub = m[k] = State._wrap({})
    m = sub._mapping
  return m


def _group(leaves: list, paths: list, filters: tuple, exhaustive: bool, copy: bool
           ) -> list[State]:
  match = _matcher(filters)
  groups: list[list] = [[] for _ in filters]
  for path, leaf in zip(paths, leaves, strict=True):
    g = 0 if match is None else match(path, leaf)
    if g >= 0:
      groups[g].append((path, _copy(leaf) if copy else leaf))
    elif exhaustive:
      raise UnmatchedFilterError(path, leaf, filters)
  return [State.from_flat_path(g) for g in groups]


def split(node: Any, *filters: Any, graph: bool | None = None) -> tuple[Any, ...]:
  """Splits a graph into its GraphDef and one State per filter.

  Args:
    node: a graph node (Module, Rngs, Optimizer...) or a pytree of them.
    *filters: each Variable goes to the first filter it matches; with no filters, one State
      holds everything.
    graph: graph mode (shared references kept) or tree mode (``False``: the graph must be
      a pytree); ``None`` takes ``nnx.set_graph_mode``'s current value.

  Returns:
    ``(graphdef, state, ...)``: one State per filter.

  Raises:
    UnmatchedFilterError: a Variable matches none of the filters.
    SharedReferenceError: tree mode found one Variable or Object at two paths.

  >>> from flaxen import nnx
  >>> graphdef, params, rest = nnx.split(nnx.Rngs(0), nnx.RngKey, ...)
  >>> list(params.default), list(rest.default)
  (['key'], ['count'])
  """
  walked = _walked(node, graph)
  if walked[0].root[0] in _LONE:  # the node is itself a leaf: it is its own state
    return (walked[0], *_lone_states(node, filters or (...,)))
  return (walked[0], *_states(walked, filters or (...,), exhaustive=True, copy=False))


_LONE = ("var", "array", "static")  # GraphDef roots of a graph that is a single leaf


def _lone_states(leaf: Any, filters: tuple) -> list:
  """``split`` of a leaf: the leaf for the first filter it matches, empty States for the
  others."""
  for i, f in enumerate(filters):
    if filterlib.to_predicate(f)((), leaf):
      return [leaf if j == i else State._wrap({}) for j in range(len(filters))]
  raise UnmatchedFilterError((), leaf, filters)


def _flat(states: tuple) -> dict:
  """``{path: leaf}`` of several States (plain nested dicts accepted), later ones winning."""
  flat: dict = {}
  for s in states:
    flat.update((s if isinstance(s, State) else State(s)).flat_state())
  return flat


def merge(graphdef_or_graphstate: Any, /, *states: Any, copy: bool = False,
          recreate_variables: bool = True) -> Any:
  """Builds a new graph from a GraphDef and the States that ``split`` returned (or from
  the ``GraphState``s that ``unpack`` returned).

  With ``copy=False`` (the default) the new graph holds the States' own Variable objects,
  so writes through either show in both; ``copy=True`` gives it copies. Raw values (not
  Variables) in the States become new Variables of the GraphDef's types and metadata
  (``recreate_variables`` is accepted for Flax's signature).

  Raises:
    NotAGraphDefError: ``graphdef`` is not a GraphDef.
    MissingStateError: the States lack a value the GraphDef needs.
    UnexpectedStateError: the States hold a value the GraphDef has no place for.

  >>> from flaxen import nnx
  >>> rngs = nnx.merge(*nnx.split(nnx.Rngs(0)))
  >>> int(rngs.default.count.value)
  0
  """
  del recreate_variables
  graphdef = graphdef_or_graphstate
  if isinstance(graphdef, State) and "_graphdef" in graphdef.__dict__:  # a GraphState
    states = (graphdef, *states)
    graphdef = graphdef.__dict__["_graphdef"]
  if type(graphdef) is not GraphDef:
    raise NotAGraphDefError(graphdef)
  state, states = (states[0], states[1:]) if states else ({}, ())
  if graphdef.root[0] in _LONE:  # split of a single leaf: the leaf is in one of the States
    for s in (state, *states):
      if not isinstance(s, State | dict):
        return s
  nested = _merged((state, *states)) if states else state
  root, checked = graph_builder.merge_state(graphdef, nested, not copy)
  if root is None:  # a leaf is missing: the flat lookup says which
    root = unflatten(graphdef, leaves_by_path(graphdef, _flat((state, *states))), None,
                     not copy)[0]
  elif not checked and _count(nested) != len(graphdef.leaf_paths):
    # Every leaf was found, so some are extra.
    known = set(graphdef.leaf_paths)
    extra = next(p for p, _ in _flat((state, *states)).items() if p not in known)
    raise UnexpectedStateError(extra)
  return root


def _count(state: Any) -> int:
  """The number of leaves in a nested State (or dict)."""
  n = 0
  for v in (state._mapping if isinstance(state, State) else state).values():
    t = type(v)  # State is an ABC: ask isinstance only of what is neither kind of leaf
    if t is State or t is dict:
      n += _count(v)
    elif isinstance(v, Variable) or not isinstance(v, State):
      n += 1
    else:
      n += _count(v)
  return n


def _merged(states: tuple) -> dict:
  """The States (or nested dicts) merged into one nested dict, later ones winning."""
  out: dict = {}
  for s in states:
    _merge_into(out, s)
  return out


def _merge_into(out: dict, state: Any) -> None:
  for k, v in (state._mapping if isinstance(state, State) else state).items():
    if isinstance(v, State | dict):
      sub = out.get(k)
      if type(sub) is not dict:
        sub = out[k] = {}
      _merge_into(sub, v)
    else:
      out[k] = v


def state(node: Any, *filters: Any, graph: bool | None = None) -> Any:
  """The graph's state (its own Variables): a State, or a tuple for several filters.

  Unlike ``split``, Variables matching no filter are left out.

  >>> from flaxen import nnx
  >>> [p for p, _ in nnx.state(nnx.Rngs(a=0, b=1), nnx.RngCount).flat_state()]
  [('a', 'count'), ('b', 'count')]
  """
  states = _states(_walked(node, graph), filters or (...,), exhaustive=False, copy=False)
  return states[0] if len(states) == 1 else tuple(states)


def graphdef(node: Any, /, *, graph: bool | None = None) -> GraphDef:
  """The GraphDef of a graph.

  >>> from flaxen import nnx
  >>> nnx.graphdef(nnx.Rngs(0)) == nnx.graphdef(nnx.Rngs(1))
  True
  """
  return _walked(node, graph)[0]


def variables(node: Any, *filters: Any, graph: bool | None = None) -> Any:
  """Like ``state`` but the State holds the graph's own Variables, not copies."""
  walked = _walked(node, graph)
  out = [_states(walked, (f,), exhaustive=False, copy=False)[0] for f in (filters or (...,))]
  return out[0] if len(out) == 1 else tuple(out)


def update(node: Any, state: Any, /, *states: Any) -> None:
  """Writes the values (and metadata) of States into the graph's Variables, in place.

  Paths that do not exist in the graph are added as new attributes.

  Raises:
    StatePathError: a path leads through something that is not a graph node.

  >>> from flaxen import nnx
  >>> rngs = nnx.Rngs(0)
  >>> nnx.update(rngs, {"default": {"count": nnx.RngCount(5)}})
  >>> int(rngs.default.count.value)
  5
  """
  rest: list = []
  _write(node, _merged((state, *states)) if states else state, (), rest)
  if rest:
    _update_flat(node, dict(rest))


def _write(node: Any, state: Any, path: tuple, rest: list) -> None:
  """Walks ``state`` down the graph, writing into the Variables it reaches; the other
  leaves (raw arrays, new paths, what cannot be entered) go to ``rest`` with their paths,
  for the general (slower) update."""
  mapping = state._mapping if type(state) is State else state
  if type(mapping) is not dict:
    mapping = State(mapping)._mapping
  for k, new in mapping.items():
    target = child(node, k)
    if type(new) is State or type(new) is dict or isinstance(new, State):
      if enterable(target):
        _write(target, new, (*path, k), rest)
      else:
        rest += [((*path, k, *p), v) for p, v in State(new).flat_state()]
    elif isinstance(target, Variable):
      if new is not target:
        d = target.__dict__
        if isinstance(new, Variable):
          d["_raw"] = new._raw
          if new._meta != d["_meta"]:
            target.set_metadata(new._meta)
        else:
          d["_raw"] = new
    else:
      rest.append(((*path, k), new))


def _update_flat(node: Any, flat: dict) -> None:
  """The general update from ``{path: leaf}``: raw arrays and pytrees through a rebuild,
  new paths added as attributes."""
  gd, leaves, paths, refs = flatten(node)
  raw_changed = False
  new_leaves = []
  for path, leaf in zip(paths, leaves, strict=True):
    new = flat.pop(path, leaf)
    if isinstance(leaf, Variable):
      if new is not leaf:
        value = new._raw if isinstance(new, Variable) else new
        leaf.__dict__["_raw"] = value
        if isinstance(new, Variable) and new._meta != leaf._meta:
          leaf.set_metadata(new._meta)
      new_leaves.append(leaf)
    else:
      raw_changed = raw_changed or new is not leaf
      new_leaves.append(new.raw_value if isinstance(new, Variable) else new)
  if raw_changed:
    unflatten(gd, new_leaves, existing=dict(enumerate(refs)))
  for path, leaf in flat.items():
    _put(_at(node, path[:-1], path), path[-1], _copy(leaf))


def _at(node: Any, keys: tuple, full_path: tuple) -> Any:
  """The container at ``keys``: an Object, or a plain dict or list (which the walk enters
  as well)."""
  for k in keys:
    try:
      if isinstance(node, Object):
        node = node._graph_get(k)
      elif isinstance(node, dict | list):
        node = node[k]
      else:
        raise StatePathError(full_path, k, node)
    except (AttributeError, KeyError, IndexError, TypeError):
      raise StatePathError(full_path, k, node) from None
  if not isinstance(node, Object | dict | list):
    raise StatePathError(full_path, full_path[-1] if full_path else None, node)
  return node


def _put(parent: Any, key: Any, value: Any) -> None:
  if isinstance(parent, Object):
    parent._graph_put(key, value)
  elif isinstance(parent, list) and key == len(parent):
    parent.append(value)
  else:
    parent[key] = value


def _del(parent: Any, key: Any) -> None:
  if isinstance(parent, Object):
    parent._graph_del(key)
  else:
    del parent[key]


def clone(node: N, variables: bool = True, *, arrays: bool = False,
          graph: bool | None = None) -> N:
  """A deep copy of the graph: new Objects, same structure and values, sharing kept.

  Args:
    node: the graph to copy.
    variables: give the copy new Variables (``False``: the copy holds the same Variable
      objects as ``node``).
    arrays: copy the array buffers too (by default the copy's Variables hold the same
      arrays, which is cheap and safe since JAX arrays are immutable; a copy is needed
      only where a buffer may be donated).
    graph: graph mode or tree mode (``False``: no shared references allowed).

  >>> from flaxen import nnx
  >>> m = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  >>> c = nnx.clone(m)
  >>> c.kernel is m.kernel, c.kernel.value is m.kernel.value
  (False, True)
  """
  gd, leaves, _, refs = flatten(node)
  if graph is False or (graph is None and not set_graph_mode.current_value()):
    check_tree(gd)
  existing = None  # index -> object that the copy reuses: its Variables, if asked
  if not variables:
    existing = {i: r for i, r in enumerate(refs) if isinstance(r, Variable)}
  if arrays:
    leaves = [x if existing and isinstance(x, Variable) else _copy_buffers(x) for x in leaves]
  return unflatten(gd, leaves, existing)[0]


def _copy_buffers(leaf: Any) -> Any:
  """A leaf's value with every array in it copied to a new buffer."""
  value = leaf.raw_value if isinstance(leaf, Variable) else leaf
  return jax.tree.map(lambda x: x.copy() if isinstance(x, ARRAY_TYPES) else x, value)


def pop(node: Any, *filters: Any) -> Any:
  """Removes the Variables matching ``filters`` from the graph and returns them as State(s)."""
  states = _states(walk(node), filters, exhaustive=False, copy=False)
  for s in states:
    # last to first, so that deleting from a list leaves the earlier indices valid
    for path, _leaf in reversed(s.flat_state()):
      _del(_at(node, path[:-1], path), path[-1])
  return states[0] if len(states) == 1 else tuple(states)


def iter_graph(node: Any, /, *, graph: bool | None = None) -> Iterator[tuple[tuple, Any]]:
  """Yields ``(path, value)`` for every node and leaf of a graph, children before parents.

  Each Object and Variable is visited once, at its first path. In tree mode
  (``graph=False``) a second path to one raises ``SharedReferenceError``.
  """
  if graph is False or (graph is None and not set_graph_mode.current_value()):
    check_tree(cached_walk(node)[0])
  seen: set[int] = set()

  def walk(value: Any, path: tuple) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, Variable | Object):
      if id(value) in seen:
        return
      seen.add(id(value))
      if isinstance(value, Object):
        for k, v in value._graph_items():
          yield from walk(v, path + (k,))
    elif isinstance(value, list | tuple) and not isinstance(value, ARRAY_TYPES):
      for i, v in enumerate(value):
        yield from walk(v, path + (i,))
    elif isinstance(value, dict):
      for k, v in value.items():
        yield from walk(v, path + (k,))
    yield path, value

  yield from walk(node, ())


class _Item:
  """A ``[key]`` step in a ``_CallProxy`` path."""

  __slots__ = ("key",)

  def __init__(self, key: Any):
    self.key = key


class _CallProxy:
  """Attribute access builds a method path; calling it runs the method on a merged copy."""

  def __init__(self, graphdef_state: tuple, path: tuple[str, ...]):
    self._graphdef_state = graphdef_state
    self._path = path

  def __getattr__(self, name: str) -> _CallProxy:
    return _CallProxy(self._graphdef_state, (*self._path, name))

  def __getitem__(self, key: Any) -> _CallProxy:
    return _CallProxy(self._graphdef_state, (*self._path, _Item(key)))

  def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, tuple]:
    node = merge(*self._graphdef_state, copy=True)  # the caller's State stays as it was
    method = node
    for name in self._path:
      method = method[name.key] if type(name) is _Item else getattr(method, name)
    out = method(*args, **kwargs)
    return out, split(node)


def merge_states_for_call(state: Any, states: tuple) -> Any:
  """One nested mapping of several States (later ones winning), for ``GraphDef.apply``."""
  return State(_merged((state, *states))) if states else state


def call(graphdef_state: tuple, /) -> Any:
  """Calls a method of the graph described by ``(graphdef, state)``, functionally.

  ``nnx.call((graphdef, state)).method(*args)`` (or ``nnx.call(...)(*args)`` for
  ``__call__``) returns ``(output, (graphdef, new_state))`` and leaves the inputs unchanged.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> graphdef, state = nnx.split(nnx.Linear(2, 1, rngs=nnx.Rngs(0)))
  >>> y, (graphdef, state) = nnx.call((graphdef, state))(jnp.ones((1, 2)))
  >>> y.shape
  (1, 1)
  """
  return _CallProxy(graphdef_state, ())


_CONTEXT_NAMES = ("UpdateContext", "update_context", "current_update_context", "SplitContext",
                  "MergeContext", "split_context", "merge_context")


def __getattr__(name: str) -> Any:
  # Flax programs reach the update contexts as ``nnx.graphlib.split_context`` too; they
  # live in update_context.py, which imports this module.
  if name in _CONTEXT_NAMES:
    from flaxen.nnx import update_context
    return getattr(update_context, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
