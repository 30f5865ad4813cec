"""State: the nested mapping of a graph's Variables (or raw arrays), keyed by attribute path.

A State is what ``nnx.split`` and ``nnx.state`` return and what ``nnx.merge`` and
``nnx.update`` take. Its leaves are detached copies of the graph's Variables, so the types
and metadata travel with the values. It is a JAX pytree (registered with keys, children in
sorted key order), so ``jax.tree.map``, ``jax.grad`` and ``jax.jit`` accept it.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> s = nnx.State({"a": {"w": nnx.Param(jnp.ones(2))}, "n": nnx.BatchStat(0)})
>>> s.a.w.value, [p for p, _ in s.flat_state()]
(Array([1., 1.], dtype=float32), [('a', 'w'), ('n',)])
>>> s.to_pure_dict()["n"]
0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from flaxen.errors.nnx import MissingKeyError, StatePathError, UnmatchedFilterError
from flaxen.nnx import filterlib
from flaxen.nnx.variables import Variable, _value_repr

__all__ = [
  "State", "FlatState", "filter_state", "from_flat_state", "map_state", "merge_state",
  "replace_by_pure_dict", "restore_int_paths", "split_state", "to_flat_state", "to_pure_dict",
]


class FlatState(list):
  """A list of ``(path, leaf)`` pairs, paths being tuples of keys, in graph order (sorted by
  path when made from ``items`` with ``sort=True``)."""

  def __init__(self, items: Iterable = (), /, *, sort: bool = True):
    items = list(items)
    if sort and len(items) > 1:
      items.sort(key=lambda item: tuple(map(_sort_key, item[0])))
    list.__init__(self, items)

  @property
  def paths(self) -> tuple[tuple, ...]:
    return tuple(p for p, _ in self)

  @staticmethod
  def from_sorted_keys_values(keys: Iterable, values: Iterable, /) -> FlatState:
    """A FlatState from paths already in order and their leaves."""
    return FlatState(zip(keys, values, strict=True), sort=False)

  def to_nested_state(self) -> State:
    return State.from_flat_path(self)

  def filter(self, first: Any, /, *filters: Any) -> Any:
    """The pairs matching each filter (a FlatState per filter; one alone for one)."""
    out = self.to_nested_state().filter(first, *filters)
    return out.flat_state() if isinstance(out, State) else tuple(s.flat_state() for s in out)

  def split(self, first: Any, /, *filters: Any) -> Any:
    """Like ``filter`` but every pair must match one of the filters."""
    out = self.to_nested_state().split(first, *filters)
    return out.flat_state() if isinstance(out, State) else tuple(s.flat_state() for s in out)

  @staticmethod
  def merge(flat_state: Iterable, /, *flat_states: Iterable) -> FlatState:
    """The pairs of all the FlatStates, later ones winning on equal paths, by path."""
    merged: dict = {}
    for fs in (flat_state, *flat_states):
      merged.update(fs)
    return FlatState(merged.items())

  @property
  def leaves(self) -> tuple[Any, ...]:
    return tuple(v for _, v in self)


class State(MutableMapping):
  """A nested mapping from keys (attribute names, list indices) to leaves or sub-States."""

  def __init__(self, mapping: Mapping | Iterable = (), /):
    mapping = dict(mapping)
    object.__setattr__(self, "_mapping", {
      k: State(v) if isinstance(v, dict) else v for k, v in mapping.items()})

  @classmethod
  def _wrap(cls, mapping: dict) -> State:
    state = object.__new__(cls)
    state.__dict__["_mapping"] = mapping  # not through __setattr__, which sets an item
    return state

  # ------------------------------------------------------------------------ mapping

  def __getitem__(self, key: Any) -> Any:
    return self._mapping[key]

  def __setitem__(self, key: Any, value: Any) -> None:
    self._mapping[key] = State(value) if isinstance(value, dict) else value

  def __delitem__(self, key: Any) -> None:
    del self._mapping[key]

  def __iter__(self) -> Iterator[Any]:
    return iter(self._mapping)

  def __len__(self) -> int:
    return len(self._mapping)

  def __getattr__(self, name: str) -> Any:
    if name.startswith("__"):
      raise AttributeError(name)
    if name == "_mapping":  # unflattened and not read yet (see state_pytree.py)
      return state_pytree.materialize(self)
    try:
      return self._mapping[name]
    except KeyError:
      raise MissingKeyError("State", name, self._mapping) from None

  def __setattr__(self, name: str, value: Any) -> None:
    self[name] = value

  def __eq__(self, other: object) -> bool:
    return isinstance(other, State) and self._mapping == other._mapping

  __hash__ = None

  @property
  def raw_mapping(self) -> dict:
    """The underlying nested dict."""
    return self._mapping

  def map(self, f: Callable[[tuple, Any], Any]) -> State:
    """Deprecated: ``nnx.map_state(f, self)``."""
    return map_state(f, self)

  def __or__(self, other: State) -> State:
    return State.merge(self, other)

  # ---------------------------------------------------------------------- flat form

  def flat_state(self) -> FlatState:
    """The leaves with their paths, depth first in insertion order."""
    out = FlatState()

    def walk(state: State, prefix: tuple) -> None:
      for k, v in state._mapping.items():
        if isinstance(v, State):
          walk(v, prefix + (k,))
        else:
          out.append((prefix + (k,), v))

    walk(self, ())
    return out

  @classmethod
  def from_flat_path(cls, flat_state: Iterable | Mapping, /) -> State:
    """Builds a nested State from ``(path, leaf)`` pairs (or a ``{path: leaf}`` mapping)."""
    items = flat_state.items() if isinstance(flat_state, Mapping) else flat_state
    root: dict = {}
    for path, leaf in items:
      node = root
      for k in path[:-1]:
        node = node.setdefault(k, {})
      node[path[-1]] = leaf
    return cls._from_nested(root)

  @classmethod
  def _from_nested(cls, nested: dict) -> State:
    return cls._wrap({k: cls._from_nested(v) if isinstance(v, dict) else v
                      for k, v in nested.items()})

  # ------------------------------------------------------------------ pure values

  def to_pure_dict(self, extract_fn: Callable[[tuple, Any], Any] | None = None) -> dict:
    """A nested plain dict of the raw values (Variables unwrapped), or of
    ``extract_fn(path, leaf)``."""
    if extract_fn is not None:
      return State.from_flat_path(
        [(p, extract_fn(p, v)) for p, v in self.flat_state()])._plain()
    return {k: v.to_pure_dict() if isinstance(v, State) else
            (v.raw_value if isinstance(v, Variable) else v) for k, v in self._mapping.items()}

  def _plain(self) -> dict:
    return {k: v._plain() if isinstance(v, State) else v for k, v in self._mapping.items()}

  def replace_by_pure_dict(self, pure_dict: Mapping,
                           replace_fn: Callable[[Any, Any], Any] | None = None) -> None:
    """Replaces leaf values in place with those of a nested plain dict of the same shape."""
    replace_fn = replace_fn or _replace_value
    for path, value in _flatten_dict(pure_dict):
      node = self
      for k in path:
        parent, key = node, _coerce_key(node, k) if isinstance(node, State) else k
        if not isinstance(parent, State) or key not in parent._mapping:
          raise StatePathError(path, k, parent)
        node = parent._mapping[key]
      parent._mapping[key] = replace_fn(node, value)

  # ------------------------------------------------------------------------ filters

  def filter(self, first: Any, /, *filters: Any) -> State | tuple[State, ...]:
    """The leaves matching each filter (a State, or a tuple for several filters)."""
    predicates = [filterlib.to_predicate(f) for f in (first, *filters)]
    groups: list[list] = [[] for _ in predicates]
    for path, leaf in self.flat_state():
      for group, pred in zip(groups, predicates, strict=True):
        if pred(path, leaf):
          group.append((path, leaf))
          break
    states = tuple(State.from_flat_path(g) for g in groups)
    return states[0] if len(states) == 1 else states

  def split(self, first: Any, /, *filters: Any) -> State | tuple[State, ...]:
    """Like :meth:`filter`, but every leaf must match one of the filters."""
    all_filters = (first, *filters)
    predicates = [filterlib.to_predicate(f) for f in all_filters]
    for path, leaf in self.flat_state():
      if not any(p(path, leaf) for p in predicates):
        raise UnmatchedFilterError(path, leaf, all_filters)
    return self.filter(*all_filters)

  @staticmethod
  def merge(state: State, /, *states: State) -> State:
    """One State with the leaves of all the given States (later ones win)."""
    flat: dict = {}
    for s in (state, *states):
      flat.update(s.flat_state())
    return State.from_flat_path(flat)

  def __repr__(self) -> str:
    return _repr(self, 0)


# ----------------------------------------------------- module-level forms of the methods


def to_flat_state(state: State) -> FlatState:
  """``state.flat_state()``."""
  return state.flat_state()


def from_flat_state(flat_state: Iterable | Mapping, *, cls: type[State] = State) -> State:
  """A nested State from ``(path, leaf)`` pairs."""
  return cls.from_flat_path(flat_state)


def to_pure_dict(state: State, extract_fn: Callable[[tuple, Any], Any] | None = None) -> dict:
  """``state.to_pure_dict(extract_fn)``."""
  return state.to_pure_dict(extract_fn)


def replace_by_pure_dict(state: State, pure_dict: Mapping,
                         replace_fn: Callable[[Any, Any], Any] | None = None) -> None:
  """``state.replace_by_pure_dict(pure_dict, replace_fn)``."""
  state.replace_by_pure_dict(pure_dict, replace_fn)


def filter_state(state: State, first: Any, /, *filters: Any) -> State | tuple[State, ...]:
  """``state.filter(first, *filters)``: non-exhaustive grouping."""
  return state.filter(first, *filters)


def split_state(state: State, first: Any, /, *filters: Any) -> State | tuple[State, ...]:
  """``state.split(first, *filters)``: every leaf must match a filter."""
  return state.split(first, *filters)


def merge_state(state: State, /, *states: State, cls: type[State] = State) -> State:
  """``State.merge(state, *states)``, as a ``cls``."""
  out = State.merge(state, *states)
  return out if cls is State else cls._wrap(out._mapping)


def map_state(f: Callable[[tuple, Any], Any], state: State) -> State:
  """A State with ``f(path, leaf)`` in place of every leaf."""
  return State.from_flat_path([(p, f(p, v)) for p, v in state.flat_state()])


def restore_int_paths(pure_dict: Mapping) -> dict:
  """Turns digit-string keys (as checkpoints store list indices) back into ints."""
  return {int(k) if isinstance(k, str) and k.isdigit() else k:
          restore_int_paths(v) if isinstance(v, Mapping) else v for k, v in pure_dict.items()}


def _repr(state: State, depth: int) -> str:
  if not state._mapping:
    return "State({})"
  pad = "  " * (depth + 1)
  lines = [f"{pad}{k!r}: {_repr(v, depth + 1) if isinstance(v, State) else _value_repr(v)},"
           for k, v in state._mapping.items()]
  return "State({\n" + "\n".join(lines) + "\n" + "  " * depth + "})"


def _replace_value(leaf: Any, value: Any) -> Any:
  return leaf.replace(value) if isinstance(leaf, Variable) else value


def _flatten_dict(d: Mapping, prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
  for k, v in d.items():
    if isinstance(v, Mapping) and not isinstance(v, State):
      yield from _flatten_dict(v, prefix + (k,))
    else:
      yield prefix + (k,), v


def _coerce_key(state: State, key: Any) -> Any:
  """Pure dicts from checkpoints may spell list indices as strings."""
  if key not in state._mapping and isinstance(key, str) and key.isdigit():
    return int(key)
  return key


def _sort_key(k: Any) -> tuple:
  return (False, k) if isinstance(k, int) else (True, str(k))


_NATURAL = ({str}, {int}, {int, bool}, {bool}, set())  # key types sorted as _sort_key does


def _sorted_keys(m: dict) -> list:
  # The common cases (all names, or all indices) need no key function: no call per key.
  return sorted(m) if set(map(type, m)) in _NATURAL else sorted(m, key=_sort_key)


# Last: the pytree registration needs State (and _sorted_keys) from this module.
from flaxen.nnx import state_pytree  # noqa: E402
