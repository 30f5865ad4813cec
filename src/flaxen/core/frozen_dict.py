"""An immutable, hashable nested dict that is a JAX pytree.

Linen returns plain dicts, but variables are often passed around frozen; every helper here
accepts both kinds.

>>> from flaxen.core import freeze, unfreeze, pop
>>> v = freeze({"params": {"w": 1}})
>>> v["params"]["w"]
1
>>> rest, params = pop(v, "params")
>>> len(rest), unfreeze(params)
(0, {'w': 1})
"""

from __future__ import annotations

from collections.abc import Iterator, KeysView, Mapping, ValuesView
from typing import Any, TypeVar

import jax

from flaxen import serialization
from flaxen.errors.core import FrozenDictError
from flaxen.errors.nested import DictKeyNotFoundError, NotAMappingError

__all__ = [
  "FrozenDict", "freeze", "unfreeze", "copy", "pop", "pretty_repr", "FrozenKeysView",
  "FrozenValuesView",
]

K = TypeVar("K")
V = TypeVar("V")


def _freeze_value(value: Any) -> Any:
  return FrozenDict(value) if isinstance(value, dict) else value


class FrozenDict(Mapping[K, V]):
  """An immutable mapping; nested dicts given to it are frozen too."""

  __slots__ = ("_dict", "_hash")

  def __init__(self, *args, **kwargs):
    raw = dict(*args, **kwargs)
    self._dict = {k: _freeze_value(v) for k, v in raw.items()}
    self._hash = None

  @classmethod
  def _trusted(cls, d: dict) -> FrozenDict:
    """Wrap ``d`` without copying; its nested dicts must already be frozen."""
    fd = object.__new__(cls)
    fd._dict = d
    fd._hash = None
    return fd

  def __getitem__(self, key: K) -> V:
    return self._dict[key]

  def __setitem__(self, key, value):
    raise FrozenDictError(key)

  def __contains__(self, key: object) -> bool:
    return key in self._dict

  def __iter__(self) -> Iterator[K]:
    return iter(self._dict)

  def __len__(self) -> int:
    return len(self._dict)

  def __repr__(self) -> str:
    return pretty_repr(self)

  def __reduce__(self):
    return FrozenDict, (self.unfreeze(),)

  def __hash__(self) -> int:
    if self._hash is None:
      self._hash = hash(tuple((k, v) for k, v in self._dict.items()))
    return self._hash

  def __eq__(self, other: object) -> bool:
    if isinstance(other, FrozenDict):
      return self._dict == other._dict
    return isinstance(other, dict) and self._dict == other

  def keys(self) -> FrozenKeysView:
    return FrozenKeysView(self)

  def values(self) -> FrozenValuesView:
    return FrozenValuesView(self)

  def copy(self, add_or_replace: Mapping | None = None) -> FrozenDict:
    """A new FrozenDict with the entries of ``add_or_replace`` added or replaced."""
    return FrozenDict({**self._dict, **(add_or_replace or {})})

  def pop(self, key: K) -> tuple[FrozenDict, V]:
    """``(frozen dict without key, value at key)``."""
    if key not in self._dict:
      raise DictKeyNotFoundError("FrozenDict.pop", key, self._dict)
    value = self._dict[key]
    return FrozenDict._trusted({k: v for k, v in self._dict.items() if k != key}), value

  def unfreeze(self) -> dict:
    """A plain, mutable deep copy (nested FrozenDicts become dicts)."""
    return unfreeze(self)

  def pretty_repr(self, num_spaces: int = 4) -> str:
    return pretty_repr(self, num_spaces)

  def tree_flatten_with_keys(self):
    keys = tuple(sorted(self._dict))
    return tuple((jax.tree_util.DictKey(k), self._dict[k]) for k in keys), keys

  @classmethod
  def tree_unflatten(cls, keys, values):
    return cls._trusted(dict(zip(keys, values, strict=True)))


jax.tree_util.register_pytree_with_keys(
  FrozenDict, FrozenDict.tree_flatten_with_keys, FrozenDict.tree_unflatten,
  flatten_func=lambda fd: (
    tuple(fd._dict[k] for k in sorted(fd._dict)), tuple(sorted(fd._dict))
  ),
)


class FrozenKeysView(KeysView):
  """The keys of a FrozenDict; its repr lists them as Flax shows them."""

  def __repr__(self) -> str:
    return f"frozen_dict_keys({list(self)})"


class FrozenValuesView(ValuesView):
  """The values of a FrozenDict."""

  def __repr__(self) -> str:
    return f"frozen_dict_values({list(self)})"


def freeze(xs: Mapping[Any, Any]) -> FrozenDict:
  """Freeze a nested dict into a :class:`FrozenDict`."""
  return FrozenDict(xs)


def unfreeze(x: Any) -> Any:
  """A plain nested dict copy of a (Frozen)dict; other values are returned unchanged."""
  if isinstance(x, FrozenDict):
    return {k: unfreeze(v) for k, v in x._dict.items()}
  if isinstance(x, dict):
    return {k: unfreeze(v) for k, v in x.items()}
  return x


_FIX = "pass the variables dict itself (e.g. what init() returned), not a pytree of another kind"


def copy(x: Mapping, add_or_replace: Mapping | None = None) -> Mapping:
  """A copy of ``x`` (dict or FrozenDict, same kind out) with entries added or replaced."""
  if isinstance(x, FrozenDict):
    return x.copy(add_or_replace)
  if isinstance(x, dict):
    return {**unfreeze(x), **(add_or_replace or {})}
  raise NotAMappingError("flaxen.core.copy", x, _FIX)


def pop(x: Mapping, key: Any) -> tuple[Mapping, Any]:
  """``(x without key, x[key])``; ``x`` itself is left unchanged."""
  if isinstance(x, FrozenDict):
    return x.pop(key)
  if isinstance(x, dict):
    if key not in x:
      raise DictKeyNotFoundError("flaxen.core.pop", key, x)
    rest = dict(x)
    value = rest.pop(key)
    return rest, value
  raise NotAMappingError("flaxen.core.pop", x, _FIX)


def pretty_repr(x: Any, num_spaces: int = 4) -> str:
  """An indented, one-entry-per-line representation of a nested (Frozen)dict.

  >>> print(pretty_repr({"a": {"b": 1}}, num_spaces=2))
  {
    a: {
      b: 1,
    },
  }
  """

  def render(value: Any, depth: int) -> str:
    if not isinstance(value, Mapping):
      return repr(value)
    if not value:
      return "{}"
    pad = " " * (num_spaces * (depth + 1))
    lines = [f"{pad}{k}: {render(v, depth + 1)}," for k, v in value.items()]
    return "{\n" + "\n".join(lines) + "\n" + " " * (num_spaces * depth) + "}"

  text = render(x, 0)
  return f"FrozenDict({text})" if isinstance(x, FrozenDict) else text


def _to_state(fd: FrozenDict) -> dict:
  return {str(k): serialization.to_state_dict(v) for k, v in fd.items()}


def _from_state(fd: FrozenDict, state: Any) -> FrozenDict:
  plain = serialization.from_state_dict(dict(fd._dict), state)
  return FrozenDict(plain)


serialization.register_serialization_state(FrozenDict, _to_state, _from_state, override=True)
