"""Update contexts: carrying structural changes made to a copy back to the original graph.

The protocol of a hand-written transform: inside ``with nnx.update_context(tag)``,

1. ``split_context(tag).split(model)`` (the outer split) remembers the model's objects;
2. ``merge_context(tag, inner=True).merge(...)`` builds the inner copy and remembers which
   outer object each of its nodes stands for;
3. after the copy was changed, ``split_context(tag).split(copy)`` (the inner split) records
   that correspondence in the GraphDef (``outer_index``), so it survives ``jax.jit``;
4. ``merge_context(tag, inner=False).merge(...)`` (the outer merge) applies the GraphDef
   to the original objects, in place (new attributes and submodules included), and
   returns the original root.

Without a tag (or outside an update context) the contexts split and merge plainly.

>>> from flaxen import nnx
>>> m = nnx.Dict(a=1)
>>> with nnx.update_context('t'):
...   with nnx.split_context('t') as ctx:
...     gd, st = ctx.split(m)
...   with nnx.merge_context('t', inner=True) as ctx:
...     inner = ctx.merge(gd, st)
...   inner.b = 2
...   with nnx.split_context('t') as ctx:
...     gd, st = ctx.split(inner)
...   with nnx.merge_context('t', inner=False) as ctx:
...     out = ctx.merge(gd, st)
>>> out is m, m['b']
(True, 2)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from flaxen.nnx.graph import GraphDef, flatten, leaves_by_path, unflatten
from flaxen.nnx.graphlib import _flat, merge, split

__all__ = ["UpdateContext", "update_context", "current_update_context", "SplitContext",
           "MergeContext", "split_context", "merge_context"]

_LOCAL = threading.local()


def _stacks() -> dict[Any, list[UpdateContext]]:
  stacks = getattr(_LOCAL, "stacks", None)
  if stacks is None:
    stacks = _LOCAL.stacks = {}
  return stacks


class UpdateContext:
  """The state of one ``update_context`` block: the outer objects and the inner copy's
  correspondence to them."""

  def __init__(self, tag: Any):
    self.tag = tag
    self.outer_refs: list | None = None  # index -> outer object (from the outer split)
    self.inner_index: dict[int, int] | None = None  # id(inner node) -> outer index
    self._inner_refs: list = []  # keeps the inner nodes alive while their ids are keys

  def split(self, node: Any, *filters: Any) -> tuple:
    graphdef, *states = split(node, *filters, graph=True)
    refs = flatten(node)[3]
    if self.inner_index is None:  # the outer split
      self.outer_refs = refs
    else:
      outer = tuple(self.inner_index.get(id(r), -1) for r in refs)
      graphdef = graphdef._with_outer(outer)
    return (graphdef, *states)

  def merge(self, graphdef: GraphDef, state: Any, *states: Any, inner: bool | None) -> Any:
    leaves = leaves_by_path(graphdef, _flat((state, *states)))
    if inner:
      root, refs = unflatten(graphdef, leaves)
      self.inner_index = {id(r): i for i, r in enumerate(refs)}
      self._inner_refs = refs
      return root
    outer = graphdef.outer_index
    if outer is None or self.outer_refs is None:
      return merge(graphdef, state, *states, copy=True)  # as Flax: the inner graph's own
    existing = {j: self.outer_refs[i] for j, i in enumerate(outer) if i >= 0}
    return unflatten(graphdef.with_no_outer_index(), leaves, existing)[0]


def update_context(tag: Any) -> UpdateContextManager:
  """Opens an update context named ``tag``: a ``with`` block or a decorator."""
  return UpdateContextManager(tag)


class UpdateContextManager:
  """What ``update_context(tag)`` returns: a context manager and a decorator."""

  def __init__(self, tag: Any):
    self.tag = tag

  def __enter__(self) -> UpdateContext:
    ctx = UpdateContext(self.tag)
    _stacks().setdefault(self.tag, []).append(ctx)
    return ctx

  def __exit__(self, *exc: Any) -> None:
    stack = _stacks()[self.tag]
    stack.pop()
    if not stack:
      del _stacks()[self.tag]

  def __call__(self, f: Callable) -> Callable:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
      with UpdateContextManager(self.tag):
        return f(*args, **kwargs)
    return wrapper


def current_update_context(tag: Any) -> UpdateContext:
  """The innermost open update context named ``tag``.

  Raises:
    ValueError: no update context named ``tag`` is open.
  """
  stack = _stacks().get(tag)
  if not stack:
    raise ValueError(f"No update context named {tag!r} is open. Fix: run this inside "
                     f"`with nnx.update_context({tag!r}):`.")
  return stack[-1]


class SplitContext:
  """``with nnx.split_context(tag) as ctx: ctx.split(node, *filters)``."""

  def __init__(self, ctxtag: Any = None):
    self.ctxtag = ctxtag

  def __enter__(self) -> SplitContext:
    return self

  def __exit__(self, *exc: Any) -> None:
    pass

  def split(self, node: Any, *filters: Any) -> tuple:
    stack = _stacks().get(self.ctxtag) if self.ctxtag is not None else None
    if not stack:
      return split(node, *filters, graph=True)
    return stack[-1].split(node, *filters)


class MergeContext:
  """``with nnx.merge_context(tag, inner) as ctx: ctx.merge(graphdef, *states)``."""

  def __init__(self, ctxtag: Any = None, inner: bool | None = None):
    self.ctxtag, self.inner = ctxtag, inner

  def __enter__(self) -> MergeContext:
    return self

  def __exit__(self, *exc: Any) -> None:
    pass

  def merge(self, graphdef: GraphDef, state: Any = None, /, *states: Any) -> Any:
    stack = _stacks().get(self.ctxtag) if self.ctxtag is not None else None
    state = {} if state is None else state
    if not stack:
      return merge(graphdef, state, *states, copy=True)  # a context merge copies, as Flax's
    return stack[-1].merge(graphdef, state, *states, inner=self.inner)


def split_context(ctxtag: Any = None) -> SplitContext:
  """A split context for the update context ``ctxtag`` (plain splits without one)."""
  return SplitContext(ctxtag)


def merge_context(ctxtag: Any = None, inner: bool | None = None) -> MergeContext:
  """A merge context for the update context ``ctxtag``: ``inner=True`` builds the inner
  copy, ``inner=False`` applies the result to the outer objects."""
  return MergeContext(ctxtag, inner)
