"""Collection filters: which variable collections are mutable, captured or returned.

A filter is ``True`` (all), ``False`` (none), a collection name, a list/tuple/set of names,
or a :class:`DenyList` (all but some).

>>> from flaxen.core.filters import DenyList, in_filter
>>> in_filter(DenyList("intermediates"), "params"), in_filter(["batch_stats"], "params")
(True, False)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

from flaxen import errors

__all__ = ["DenyList", "CollectionFilter", "in_filter", "check_filter", "union_filters"]


@dataclasses.dataclass(frozen=True)
class DenyList:
  """Every collection except those the filter ``deny`` matches."""

  deny: Any


CollectionFilter = bool | str | Collection[str] | DenyList


def in_filter(filter_like: CollectionFilter, col: str) -> bool:
  """Whether collection ``col`` matches ``filter_like``."""
  if filter_like is True or filter_like is False:
    return filter_like
  if isinstance(filter_like, str):
    return col == filter_like
  if isinstance(filter_like, DenyList):
    return not in_filter(filter_like.deny, col)
  if isinstance(filter_like, list | tuple | set | frozenset):
    return col in filter_like
  raise errors.InvalidFilterError(filter_like, collections=True)


def check_filter(filter_like: Any) -> CollectionFilter:
  """Return ``filter_like`` after checking that it is a valid filter."""
  if isinstance(filter_like, bool | str):
    return filter_like
  if isinstance(filter_like, DenyList):
    check_filter(filter_like.deny)
    return filter_like
  if isinstance(filter_like, list | tuple | set | frozenset) and all(
    isinstance(c, str) for c in filter_like
  ):
    return filter_like
  raise errors.InvalidFilterError(filter_like, collections=True)


def union_filters(a: CollectionFilter, b: CollectionFilter) -> CollectionFilter:
  """A filter matching what ``a`` or ``b`` matches (``a`` and ``b`` hold plain names)."""
  if a is True or b is True:
    return True
  if a is False:
    return b
  if b is False:
    return a
  names = lambda f: {f} if isinstance(f, str) else set(f)
  if isinstance(a, DenyList) and isinstance(b, DenyList):
    return DenyList(tuple(sorted(names(a.deny) & names(b.deny))))
  if isinstance(b, DenyList):
    a, b = b, a
  if isinstance(a, DenyList):
    denied = names(a.deny) - names(b)
    return DenyList(tuple(sorted(denied))) if denied else True
  return tuple(sorted(names(a) | names(b)))
