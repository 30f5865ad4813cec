"""Flax's deprecated ``Traversal`` objects, re-exported by :mod:`flaxen.traverse_util`.

A traversal selects parts of a value and either lists them (``iterate``) or returns a copy
with them replaced (``update``, ``set``). Traversals compose by attribute and item access
(``t.layers[0].kernel``) and with ``compose`` / ``merge`` / ``each`` / ``tree`` / ``filter``.
Flax deprecates them in favour of :func:`flaxen.traverse_util.path_aware_map` and
``flaxen.cursor``; building one from user code raises a ``DeprecationWarning``, as in Flax.

>>> import warnings
>>> from flaxen import traverse_util
>>> with warnings.catch_warnings():
...   warnings.simplefilter("ignore", DeprecationWarning)
...   t = traverse_util.t_identity["b"].each()
>>> t.update(lambda x: x * 10, {"a": 1, "b": [2, 3]})
{'a': 1, 'b': [20, 30]}
>>> list(t.iterate({"a": 1, "b": [2, 3]}))
[2, 3]
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax

__all__ = [
  "Traversal", "TraverseId", "TraverseMerge", "TraverseCompose", "TraverseFilter",
  "TraverseAttr", "TraverseItem", "TraverseEach", "TraverseTree", "ModelParamTraversal",
  "t_identity",
]


class Traversal(abc.ABC):
  """Base class of traversals: ``update``, ``iterate`` and the ways to combine them."""

  def __new__(cls, *args: Any, **kwargs: Any) -> Traversal:
    if sys._getframe(1).f_globals.get("__name__") != __name__:  # built by user code
      warnings.warn("flax.traverse_util.Traversal is deprecated; use "
                    "traverse_util.path_aware_map or flaxen.cursor instead.",
                    DeprecationWarning, stacklevel=2)
    return super().__new__(cls)

  @abc.abstractmethod
  def update(self, fn: Callable[[Any], Any], inputs: Any) -> Any:
    """A copy of ``inputs`` with every selected part ``x`` replaced by ``fn(x)``."""

  @abc.abstractmethod
  def iterate(self, inputs: Any) -> Iterator[Any]:
    """The selected parts of ``inputs``, in order."""

  def set(self, values: list[Any], inputs: Any) -> Any:
    """A copy of ``inputs`` with the selected parts replaced by ``values``, in order."""
    remaining = iter(values)

    def take(_: Any) -> Any:
      try:
        return next(remaining)
      except StopIteration:
        raise ValueError("Not enough values to set: the traversal selects more parts "
                         f"than the {len(values)} given.") from None

    out = self.update(take, inputs)
    if next(remaining, _END) is not _END:
      raise ValueError(f"Too many values to set: the traversal selects fewer than {len(values)}.")
    return out

  def compose(self, other: Traversal) -> Traversal:
    """``other`` applied to each part this traversal selects."""
    return TraverseCompose(self, other)

  def merge(self, *traversals: Traversal) -> Traversal:
    """This traversal and ``traversals`` together (each ``update`` in turn)."""
    return self.compose(TraverseMerge(*traversals))

  def each(self) -> Traversal:
    """Each item of the selected lists / tuples."""
    return self.compose(TraverseEach())

  def tree(self) -> Traversal:
    """Each leaf of the selected pytrees."""
    return self.compose(TraverseTree())

  def filter(self, fn: Callable[[Any], bool]) -> Traversal:
    """Only the selected parts for which ``fn`` is true."""
    return self.compose(TraverseFilter(fn))

  def __getattr__(self, attr: str) -> Traversal:
    if attr.startswith("__"):
      raise AttributeError(attr)
    return self.compose(TraverseAttr(attr))

  def __getitem__(self, key: Any) -> Traversal:
    return self.compose(TraverseItem(key))


_END = object()


class TraverseId(Traversal):
  """The whole input."""

  def update(self, fn: Callable[[Any], Any], inputs: Any) -> Any:
    return fn(inputs)

  def iterate(self, inputs: Any) -> Iterator[Any]:
    yield inputs


t_identity = TraverseId()


class TraverseMerge(Traversal):
  """Several traversals of the same input; ``update`` applies them in turn."""

  def __init__(self, *traversals: Traversal):
    self._traversals = traversals

  def update(self, fn: Callable[[Any], Any], inputs: Any) -> Any:
    for t in self._traversals:
      inputs = t.update(fn, inputs)
    return inputs

  def iterate(self, inputs: Any) -> Iterator[Any]:
    for t in self._traversals:
      yield from t.iterate(inputs)


class TraverseCompose(Traversal):
  """``y`` applied to each part that ``x`` selects."""

  def __init__(self, x: Traversal, y: Traversal):
    self._x, self._y = x, y

  def update(self, fn: Callable[[Any], Any], inputs: Any) -> Any:
    return self._x.update(lambda z: self._y.update(fn, z), inputs)

  def iterate(self, inputs: Any) -> Iterator[Any]:
    for part in self._x.iterate(inputs):
      yield from self._y.iterate(part)


class TraverseFilter(Traversal):
  """The input if ``fn(input)`` is true, else nothing."""

  def __init__(self, fn: Callable[[Any], bool]):
    self._fn = fn

  def update(self, fn: Callable[[Any], Any], inputs: Any) -> Any:
    return fn(inputs) if self._fn(inputs) else inputs

  def iterate(self, inputs: Any) -> Iterator[Any]:
    if self._fn(inputs):
      yield inputs


class TraverseAttr(Traversal):
  """One attribute of a dataclass or namedtuple."""

  def __init__(self, attr: str):
    self._attr = attr

  def update(self, fn: Callable[[Any], Any], inputs: Any) -> Any:
    value = fn(getattr(inputs, self._attr))
    if isinstance(inputs, tuple) and hasattr(inputs, "_replace"):
      return inputs._replace(**{self._attr: value})
    if not dataclasses.is_dataclass(inputs):
      raise TypeError(f"TraverseAttr({self._attr!r}) can update a dataclass or namedtuple "
                      f"only, got {type(inputs).__name__}.")
    return dataclasses.replace(inputs, **{self._attr: value})  # type: ignore[type-var]

  def iterate(self, inputs: Any) -> Iterator[Any]:
    yield getattr(inputs, self._attr)


class TraverseItem(Traversal):
  """One item (a key, an index or a slice) of a dict, list or tuple."""

  def __init__(self, key: Any):
    self._key = key

  def update(self, fn: Callable[[Any], Any], inputs: Any) -> Any:
    key = self._key
    if isinstance(inputs, tuple):
      sl = key if isinstance(key, slice) else slice(key, key + 1 if key != -1 else None)
      chosen = set(range(*sl.indices(len(inputs))))
      items = [fn(x) if i in chosen else x for i, x in enumerate(inputs)]
      return type(inputs)(*items) if hasattr(inputs, "_fields") else type(inputs)(items)
    out = copy.copy(inputs)
    if isinstance(key, slice):
      out[key] = [fn(x) for x in inputs[key]]
    else:
      out[key] = fn(inputs[key])
    return out

  def iterate(self, inputs: Any) -> Iterator[Any]:
    if isinstance(self._key, slice):
      yield from inputs[self._key]
    else:
      yield inputs[self._key]


class TraverseEach(Traversal):
  """Each item of a list or tuple."""

  def update(self, fn: Callable[[Any], Any], inputs: Any) -> Any:
    if not isinstance(inputs, list | tuple):
      raise ValueError(f"TraverseEach walks lists and tuples, got {type(inputs).__name__}.")
    items = [fn(x) for x in inputs]
    if hasattr(inputs, "_fields"):
      return type(inputs)(*items)
    return type(inputs)(items)

  def iterate(self, inputs: Any) -> Iterator[Any]:
    yield from inputs


class TraverseTree(Traversal):
  """Each leaf of a pytree."""

  def update(self, fn: Callable[[Any], Any], inputs: Any) -> Any:
    return jax.tree.map(fn, inputs)

  def iterate(self, inputs: Any) -> Iterator[Any]:
    yield from jax.tree.leaves(inputs)


class ModelParamTraversal(Traversal):
  """The leaves of a nested params dict whose path ``"/a/b/kernel"`` and value pass
  ``filter_fn(path, value)``."""

  def __init__(self, filter_fn: Callable[[str, Any], bool]):
    self._filter_fn = filter_fn

  def _selected(self, inputs: Any) -> tuple[dict, list]:
    from flaxen.traverse_util import flatten_dict  # traverse_util re-exports this module

    flat = flatten_dict(inputs, keep_empty_nodes=True)
    keys = [k for k, v in flat.items() if self._filter_fn("/" + "/".join(map(str, k)), v)]
    return flat, keys

  def update(self, fn: Callable[[Any], Any], inputs: Any) -> Any:
    flat, keys = self._selected(inputs)
    from flaxen.traverse_util import unflatten_dict

    for k in keys:
      flat[k] = fn(flat[k])
    out = unflatten_dict(flat)
    return type(inputs)(out) if not isinstance(inputs, dict) else out

  def iterate(self, inputs: Any) -> Iterator[Any]:
    flat, keys = self._selected(inputs)
    for k in keys:
      yield flat[k]
