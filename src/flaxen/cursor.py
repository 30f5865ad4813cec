"""Cursor: edit a copy of a nested object (dicts, FrozenDicts, lists, tuples, namedtuples,
dataclasses) by writing to paths, as if it were mutable.

A :class:`Cursor` records assignments (``c['a'][0] = x``, ``c.params = p``) without
touching the object it wraps; :meth:`Cursor.build` returns a new object with them applied,
copying only the containers on the changed paths.

>>> from flaxen.cursor import cursor
>>> params = {"dense": {"kernel": 1.0, "bias": 0.0}, "layers": (1, 2)}
>>> c = cursor(params)
>>> c["dense"]["bias"] = 5.0
>>> c["layers"][1] = 20
>>> c.build()
{'dense': {'kernel': 1.0, 'bias': 5.0}, 'layers': (1, 20)}
>>> params
{'dense': {'kernel': 1.0, 'bias': 0.0}, 'layers': (1, 2)}
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from flaxen import errors
from flaxen.core import FrozenDict

__all__ = ["AccessType", "Cursor", "Indexable", "ParentKey", "cursor", "is_named_tuple"]

A = TypeVar("A")


@runtime_checkable
class Indexable(Protocol):
  """Anything with ``__getitem__``."""

  def __getitem__(self, key) -> Any: ...


class AccessType(enum.Enum):
  """How a child is reached from its parent: ``obj[key]`` or ``obj.key``."""

  ITEM = enum.auto()
  ATTR = enum.auto()


@dataclasses.dataclass
class ParentKey(Generic[A]):
  """Where a child Cursor sits: its parent Cursor, the key and how the key is used."""

  parent: Cursor[A]
  key: Any
  access_type: AccessType


def is_named_tuple(obj: Any) -> bool:
  """Whether ``obj`` is an instance of a ``namedtuple`` / ``typing.NamedTuple`` class."""
  return isinstance(obj, tuple) and all(
    hasattr(obj, name) for name in ("_fields", "_asdict", "_replace"))


def _children(obj: Any) -> tuple[Any, AccessType] | None:
  """``(iterable of (key, child), access type)`` of a container, None for a leaf."""
  if isinstance(obj, dict | FrozenDict):
    return obj.items(), AccessType.ITEM
  if is_named_tuple(obj):
    return ((name, getattr(obj, name)) for name in obj._fields), AccessType.ATTR
  if isinstance(obj, list | tuple):
    return enumerate(obj), AccessType.ITEM
  if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
    fields = (f.name for f in dataclasses.fields(obj) if f.init)
    return ((name, getattr(obj, name)) for name in fields), AccessType.ATTR
  return None


def _walk(path: tuple, obj: Any, visit: Callable[[str, Any], bool]) -> Iterator[tuple]:
  """Paths (tuples of (key, AccessType)) below ``obj`` where ``visit(str_path, value)`` is
  True, depth first; the walk does not go below such a path, nor calls ``visit`` on the
  root."""
  if path and visit("/".join(str(key) for key, _ in path), obj):
    yield path
    return
  found = _children(obj)
  if found is not None:
    items, access = found
    for key, value in items:
      yield from _walk((*path, (key, access)), value, visit)


def _rebuilt(obj: Any, changes: dict) -> Any:
  """A copy of container ``obj`` with ``changes`` (key -> new value) applied."""
  if not changes:
    return obj
  if isinstance(obj, FrozenDict):
    return obj.copy(changes)
  if isinstance(obj, dict | list):
    new = obj.copy()
    for key, value in changes.items():
      new[key] = value
    return new
  if is_named_tuple(obj):
    return obj._replace(**changes)
  if isinstance(obj, tuple):
    new = list(obj)
    for key, value in changes.items():
      new[key] = value
    return type(obj)(new) if type(obj) is not tuple else tuple(new)
  if dataclasses.is_dataclass(obj):
    return dataclasses.replace(obj, **changes)
  return obj


class Cursor(Generic[A]):
  """A view of ``obj`` (or of a part of it, under ``parent_key``) that records edits.

  Index or get an attribute to move down (a child Cursor); assign to record a new value;
  :meth:`build` the edited copy, or :meth:`set` one value and get the edited root at once.
  Arithmetic and comparisons act on the wrapped value, so ``c['step'] += 1`` works.

  Args:
    obj: the object to view.
    parent_key: where it sits in its parent Cursor (None for the root).
  """

  def __init__(self, obj: A, parent_key: ParentKey[A] | None):
    # Stored with object.__setattr__: this class's own __setattr__ records edits.
    object.__setattr__(self, "_obj", obj)
    object.__setattr__(self, "_parent_key", parent_key)
    object.__setattr__(self, "_changes", {})

  @property
  def _root(self) -> Cursor[A]:
    node = self
    while node._parent_key is not None:
      node = node._parent_key.parent
    return node

  @property
  def _path(self) -> str:
    """The Python expression of this node from the root, e.g. ``['params'].dense[0]``."""
    if self._parent_key is None:
      return ""
    pk = self._parent_key
    step = f".{pk.key}" if pk.access_type is AccessType.ATTR else f"[{pk.key!r}]"
    return pk.parent._path + step

  def __getitem__(self, key) -> Cursor[A]:
    if key in self._changes:
      return self._changes[key]
    if is_named_tuple(self._obj):
      return getattr(self, self._obj._fields[key])
    where = self._path or "the root"
    if not isinstance(self._obj, Indexable):
      raise TypeError(f"Cannot index into {type(self._obj).__name__} at {where}")
    if isinstance(self._obj, Mapping) and key not in self._obj:
      raise KeyError(f"Key {key!r} not found at {where}; it has {list(self._obj)}")
    child = Cursor(self._obj[key], ParentKey(self, key, AccessType.ITEM))
    self._changes[key] = child
    return child

  def __getattr__(self, name: str) -> Cursor[A]:
    changes = self.__dict__.get("_changes")
    # copy, pickle and friends probe dunders (and run before __init__): not attributes
    if name.startswith("__") or changes is None:
      raise AttributeError(name)
    if name in changes:
      return changes[name]
    if not hasattr(self._obj, name):
      raise AttributeError(f"{type(self._obj).__name__} at {self._path or 'the root'} has no "
                           f"attribute {name!r}")
    child = Cursor(getattr(self._obj, name), ParentKey(self, name, AccessType.ATTR))
    changes[name] = child
    return child

  def __setitem__(self, key, value) -> None:
    if is_named_tuple(self._obj):
      setattr(self, self._obj._fields[key], value)
      return
    self._changes[key] = Cursor(value, ParentKey(self, key, AccessType.ITEM))

  def __setattr__(self, name: str, value) -> None:
    self._changes[name] = Cursor(value, ParentKey(self, name, AccessType.ATTR))

  def set(self, value) -> A:
    """Records ``value`` at this node and returns the edited copy of the root object.

    >>> cursor({"a": 1, "b": (2, 3)})["b"][0].set(10)
    {'a': 1, 'b': (10, 3)}
    """
    if self._parent_key is None:
      return value
    parent, key = self._parent_key.parent, self._parent_key.key
    parent._changes[key] = Cursor(value, self._parent_key)
    return parent._root.build()

  def build(self) -> A:
    """A copy of this node's object with every recorded edit below it applied.

    Containers on an edited path are copied (dicts, lists, tuples and namedtuples of the
    same type; FrozenDicts with ``copy``; dataclasses with ``dataclasses.replace``);
    everything else is shared with the original, which is never modified.
    """
    return _rebuilt(self._obj, {key: child.build() for key, child in self._changes.items()})

  def apply_update(self, update_fn: Callable[[str, Any], Any]) -> Cursor[A]:
    """Records ``update_fn(path, value)`` for every node below this one, where it differs.

    ``path`` is the '/'-joined keys from this node (``'params/dense/kernel'``). A node
    counts as changed when ``update_fn`` returns another object (``is not``), and the walk
    does not go below a changed node; the root itself is not passed.

    Returns:
      This Cursor, to :meth:`build` from.

    >>> c = cursor({"w": 1.0, "sub": {"w": 2.0, "b": 0.0}})
    >>> c.apply_update(lambda path, v: v * 10 if path.endswith("w") else v).build()
    {'w': 10.0, 'sub': {'w': 20.0, 'b': 0.0}}
    """
    if not callable(update_fn):
      raise errors.TraverseTreeError(update_fn, None)
    updates: list = []

    def visit(path: str, value: Any) -> bool:
      new = update_fn(path, value)
      if new is not value:
        updates.append(new)
        return True
      return False

    for path, value in zip(list(_walk((), self._obj, visit)), updates, strict=True):
      *above, (key, access) = path
      parent = self._follow(above)
      if access is AccessType.ITEM:
        parent[key] = value
      else:
        setattr(parent, key, value)
    return self

  def find(self, cond_fn: Callable[[str, Any], bool]) -> Cursor[A]:
    """The one child Cursor whose path and value satisfy ``cond_fn`` (see :meth:`find_all`).

    Raises:
      CursorFindError: no node, or more than one, satisfies ``cond_fn``.
    """
    found = self.find_all(cond_fn)
    first = next(found, None)
    if first is None:
      raise errors.CursorFindError()
    second = next(found, None)
    if second is not None:
      raise errors.CursorFindError(first, second)
    return first

  def find_all(self, cond_fn: Callable[[str, Any], bool]) -> Generator[Cursor[A], None, None]:
    """Child Cursors of the nodes below this one where ``cond_fn(path, value)`` is True.

    ``path`` is as for :meth:`apply_update`. The walk does not go below a match, and the
    root itself is not tested. Edits through the yielded Cursors show in :meth:`build`.
    """
    if not callable(cond_fn):
      raise errors.TraverseTreeError(None, cond_fn)
    for path in _walk((), self._obj, cond_fn):
      yield self._follow(path)

  def _follow(self, path) -> Cursor[A]:
    node = self
    for key, access in path:
      node = node[key] if access is AccessType.ITEM else getattr(node, key)
    return node

  def __str__(self) -> str:
    return str(self._obj)

  def __repr__(self) -> str:
    changes = ", ".join(f"{k!r}: {v!r}" for k, v in self._changes.items())
    return f"Cursor(_obj={self._obj!r}, _changes={{{changes}}})"

  def __len__(self) -> int:
    return len(self._obj)

  def __iter__(self) -> Iterator[Cursor[A]]:
    if not isinstance(self._obj, list | tuple):
      raise NotImplementedError(f"Iterating a Cursor needs a list or tuple, not "
                                f"{type(self._obj).__name__}")
    return (self[i] for i in range(len(self._obj)))

  def __reversed__(self) -> Iterator[Cursor[A]]:
    if not isinstance(self._obj, list | tuple):
      raise NotImplementedError(f"Iterating a Cursor needs a list or tuple, not "
                                f"{type(self._obj).__name__}")
    return (self[i] for i in reversed(range(len(self._obj))))

  __hash__ = None  # type: ignore[assignment]  # __eq__ compares the wrapped value


def _binary(op: Callable) -> tuple[Callable, Callable]:
  return (lambda self, other: op(self._obj, other), lambda self, other: op(other, self._obj))


# Operators act on the wrapped value (``c['w'] * 2`` is ``w * 2``), so that augmented
# assignments like ``c['step'] += 1`` read the value and record the result.
for _name, _op in [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                   ("matmul", operator.matmul), ("truediv", operator.truediv),
                   ("floordiv", operator.floordiv), ("mod", operator.mod), ("divmod", divmod),
                   ("pow", pow), ("lshift", operator.lshift), ("rshift", operator.rshift),
                   ("and", operator.and_), ("xor", operator.xor), ("or", operator.or_)]:
  _left, _right = _binary(_op)
  setattr(Cursor, f"__{_name}__", _left)
  setattr(Cursor, f"__r{_name}__", _right)
for _name, _op in [("lt", operator.lt), ("le", operator.le), ("eq", operator.eq),
                   ("ne", operator.ne), ("gt", operator.gt), ("ge", operator.ge)]:
  setattr(Cursor, f"__{_name}__", _binary(_op)[0])
for _name, _op in [("neg", operator.neg), ("pos", operator.pos), ("abs", abs),
                   ("invert", operator.invert)]:
  setattr(Cursor, f"__{_name}__", lambda self, _op=_op: _op(self._obj))
Cursor.__round__ = lambda self, ndigits=None: round(self._obj, ndigits)  # type: ignore[attr-defined]


def cursor(obj: A) -> Cursor[A]:
  """A root :class:`Cursor` over ``obj``, to record edits and :meth:`~Cursor.build` a copy.

  Args:
    obj: a nested structure of dicts, FrozenDicts, lists, tuples, namedtuples and
      dataclasses (struct dataclasses and train states included), with any leaves.
  """
  return Cursor(obj, None)
