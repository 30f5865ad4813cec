"""Errors of nested dicts: ``flaxen.traverse_util`` and the FrozenDict helpers."""

from __future__ import annotations

from collections.abc import Iterable

from flaxen.errors.base import FlaxenError, names, short_repr

__all__ = ["NotAMappingError", "FlatKeyError", "PathConflictError", "DictKeyNotFoundError"]


class NotAMappingError(FlaxenError, TypeError):
  """A function that walks nested dicts was given something that is not a mapping."""

  def __init__(self, where: str, value: object, fix: str):
    super().__init__(
      f"{where} expects a mapping, got {type(value).__name__} {short_repr(value)}: it "
      f"walks nested dicts (dict or FrozenDict). Fix: {fix}."
    )


class FlatKeyError(FlaxenError, TypeError):
  """A key of a flat dict given to ``unflatten_dict`` is not a non-empty path."""

  def __init__(self, key: object, sep: str | None):
    how = ("a non-empty tuple of keys, e.g. ('Dense_0', 'kernel')" if sep is None
           else f"a non-empty string joined with sep={sep!r}")
    super().__init__(
      f"unflatten_dict: key {short_repr(key)} ({type(key).__name__}) is not a path: with "
      f"sep={sep!r} every key must be {how}. Fix: pass sep='/' (the separator used to flatten) "
      "for string keys, or tuple keys with sep=None, as flatten_dict returns them."
    )


class PathConflictError(FlaxenError, ValueError):
  """A flat dict holds a leaf at a path that is also the prefix of another path."""

  def __init__(self, leaf_path: tuple, other_path: tuple):
    super().__init__(
      f"unflatten_dict: {leaf_path} is a leaf and also the prefix of {other_path}, and no "
      "nested dict can hold both. Fix: keep only one of the "
      "two keys, or rename the leaf's last key so that it no longer prefixes the other."
    )


class DictKeyNotFoundError(FlaxenError, KeyError):
  """``pop`` was asked for a key the dict does not have."""

  def __init__(self, where: str, key: object, keys: Iterable[object]):
    super().__init__(
      f"{where}: no key {short_repr(key)}; the dict has the keys {names(keys)}. Fix: pop one "
      "of those keys, or check `key in d` first."
    )

  __str__ = Exception.__str__  # KeyError would quote the whole message
