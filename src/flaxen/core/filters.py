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

__all__ = ["DenyList", "CollectionFilter", "in_filter", "check_filter", "union_filters",
           "intersect_filters"]


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


def _names(f: CollectionFilter) -> tuple[bool, frozenset]:
  """``f`` as ``(deny, names)``: it matches ``names``, or with ``deny`` all but ``names``."""
  if isinstance(f, bool):
    return f, frozenset()  # True denies nothing, False allows nothing
  if isinstance(f, str):
    return False, frozenset((f,))
  if isinstance(f, DenyList):
    deny, names = _names(f.deny)
    return not deny, names
  return False, frozenset(f)


def union_filters(a: CollectionFilter, b: CollectionFilter) -> CollectionFilter:
  """A filter matching what ``a`` or ``b`` matches.

  Raises:
    flaxen.errors.InvalidFilterError: ``a`` or ``b`` is not a filter.
  """
  check_filter(a)
  check_filter(b)
  if a is True or b is True:
    return True
  if a is False:
    return b
  if b is False:
    return a
  (deny_a, names_a), (deny_b, names_b) = _names(a), _names(b)
  if not (deny_a or deny_b):
    return tuple(sorted(names_a | names_b))
  if deny_a and deny_b:
    denied = names_a & names_b
  else:
    denied = names_a - names_b if deny_a else names_b - names_a
  return DenyList(tuple(sorted(denied))) if denied else True


def intersect_filters(a: CollectionFilter, b: CollectionFilter) -> CollectionFilter:
  """A filter matching what both ``a`` and ``b`` match.

  Raises:
    flaxen.errors.InvalidFilterError: ``a`` or ``b`` is not a filter.
  """
  check_filter(a)
  check_filter(b)
  if a is True or b is False:
    return b
  if b is True or a is False:
    return a
  (deny_a, names_a), (deny_b, names_b) = _names(a), _names(b)
  if deny_a and deny_b:
    return DenyList(tuple(sorted(names_a | names_b)))
  if deny_a or deny_b:
    kept = names_b - names_a if deny_a else names_a - names_b
  else:
    kept = names_a & names_b
  return tuple(sorted(kept))
