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

Each ``split`` / ``merge`` of one context shares its node indices with the others of that
context (Flax's ``ref_index`` / ``index_ref``): splitting a second object that shares nodes
with the first gives ``("ref", i)`` entries, and the merge context rebuilds the sharing.
The update context learns what a split or merge context saw when the context closes
(``flatten_end`` / ``unflatten_end``). Without a tag (or outside an update context) the
contexts split and merge plainly.

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
from collections.abc import Callable, Iterator
from typing import Any

from flaxen.nnx import filterlib
from flaxen.nnx.graph import GraphDef, flatten, leaves_by_path, unflatten
from flaxen.nnx.graphlib import _flat, merge
from flaxen.nnx.state import FlatState, State

__all__ = ["UpdateContext", "update_context", "current_update_context", "SplitContext",
           "MergeContext", "split_context", "merge_context", "RefMap"]

_LOCAL = threading.local()


def _stacks() -> dict[Any, list[UpdateContext]]:
  stacks = getattr(_LOCAL, "stacks", None)
  if stacks is None:
    stacks = _LOCAL.stacks = {}
  return stacks


class RefMap:
  """A mapping from objects (by identity) to their node index, as walks number them; it
  holds the objects. ``seed`` is the ``(index, refs)`` pair a walk extends in place."""

  def __init__(self, items: Any = ()):
    self.index: dict[int, int] = {}
    self.refs: list = []
    for obj, i in items:
      self[obj] = i

  @property
  def seed(self) -> tuple[dict[int, int], list]:
    return self.index, self.refs

  def __setitem__(self, obj: Any, i: int) -> None:
    if i != len(self.refs):
      raise ValueError(f"RefMap numbers objects in order: expected index {len(self.refs)}, "
                       f"got {i}.")
    self.index[id(obj)] = i
    self.refs.append(obj)

  def __getitem__(self, obj: Any) -> int:
    return self.index[id(obj)]

  def get(self, obj: Any, default: Any = None) -> Any:
    return self.index.get(id(obj), default)

  def __contains__(self, obj: Any) -> bool:
    return id(obj) in self.index

  def __len__(self) -> int:
    return len(self.refs)

  def __iter__(self) -> Iterator[Any]:
    return iter(self.refs)

  def items(self) -> list[tuple[Any, int]]:
    return [(obj, i) for i, obj in enumerate(self.refs)]


class UpdateContext:
  """The state of one ``update_context`` block.

  Args:
    tag: the context's name.
    outer_ref_outer_index: the outer split's ``RefMap`` (outer object -> index).
    outer_index_inner_ref: the inner merge's ``{outer index: inner object}``.
    outer_index_outer_ref: ``{outer index: outer object}``.
    inner_ref_outer_index: ``RefMap``-like ``{id(inner object): outer index}``.
    static_cache: accepted for Flax's signature (flaxen's ``cached_partial`` keeps its
      own cache).
  """

  def __init__(self, tag: Any, outer_ref_outer_index: RefMap | None = None,
               outer_index_inner_ref: dict | None = None,
               outer_index_outer_ref: dict | None = None,
               inner_ref_outer_index: dict | None = None, static_cache: Any = None):
    self.tag = tag
    self.outer_ref_outer_index = outer_ref_outer_index
    self.outer_index_inner_ref = outer_index_inner_ref
    self.outer_index_outer_ref = outer_index_outer_ref
    self.inner_ref_outer_index = inner_ref_outer_index
    self.static_cache = static_cache

  def __hash__(self) -> int:  # opaque to jax: one context is as good as another
    return 0

  def __eq__(self, other: object) -> bool:
    return isinstance(other, UpdateContext)

  def flatten_end(self, ref_index: RefMap) -> None:
    """Called when a split context closes: the first (outer) split keeps its objects; a
    later (inner) split ends the inner copy's bookkeeping."""
    if self.outer_ref_outer_index is None:
      self.outer_ref_outer_index = ref_index
      self.outer_index_outer_ref = dict(enumerate(ref_index.refs))
    else:
      self.outer_index_inner_ref = None
      self.inner_ref_outer_index = None

  def unflatten_end(self, index_ref: dict, inner_merge: bool) -> None:
    """Called when a merge context closes: the inner merge records which outer node each
    inner node stands for."""
    if inner_merge:
      self.outer_index_inner_ref = index_ref
      self.inner_ref_outer_index = {id(obj): i for i, obj in index_ref.items()}
      self._inner_refs = list(index_ref.values())  # keeps the ids valid


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
    ctx = stack.pop()
    ctx.outer_ref_outer_index = ctx.outer_index_outer_ref = None  # drop the references
    ctx.outer_index_inner_ref = ctx.inner_ref_outer_index = None
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


def _context(tag: Any) -> UpdateContext | None:
  stack = _stacks().get(tag) if tag is not None else None
  return stack[-1] if stack else None


class SplitContext:
  """``with nnx.split_context(tag) as ctx: ctx.split(node, *filters)``.

  Args:
    ctxtag: the update context's tag (``None``: plain splits).
    ref_index: the objects this context's splits have numbered (a ``RefMap``).
    is_inner: whether the update context already had its outer split.
  """

  def __init__(self, ctxtag: Any = None, ref_index: RefMap | None = None,
               is_inner: bool | None = None):
    self.ctxtag = ctxtag
    self.ref_index = RefMap() if ref_index is None else ref_index
    self.is_inner = is_inner

  def __enter__(self) -> SplitContext:
    return self

  def __exit__(self, *exc: Any) -> None:
    ctx = _context(self.ctxtag)
    if ctx is not None:
      ctx.flatten_end(self.ref_index)

  def _walk(self, node: Any) -> tuple[GraphDef, list, list]:
    graphdef, leaves, paths, _ = flatten(node, self.ref_index.seed)
    ctx = _context(self.ctxtag)
    if ctx is not None and ctx.inner_ref_outer_index:  # the inner split: name outer nodes
      outer = ctx.inner_ref_outer_index
      graphdef = graphdef._with_outer(tuple(
        outer.get(id(r), -1) for r in self.ref_index.refs[:graphdef.num_refs]))
    return graphdef, leaves, paths

  def split(self, node: Any, *filters: Any) -> tuple:
    """``(graphdef, state, *states)``, as ``nnx.split``, in this context's numbering."""
    graphdef, *flat_states = self.flatten(node, *filters)
    return (graphdef, *(State.from_flat_path(f) for f in flat_states))

  def flatten(self, node: Any, *filters: Any, with_paths: bool = True) -> tuple:
    """``(graphdef, flat_state, *flat_states)``: the leaves as ``FlatState``s of
    ``(path, leaf)`` pairs, one per filter; ``with_paths=False``: ``(graphdef, leaves)``.

    Raises:
      ValueError: filters given with ``with_paths=False``.
    """
    if not with_paths and filters:
      raise ValueError("SplitContext.flatten: filters need with_paths=True.")
    graphdef, leaves, paths = self._walk(node)
    if not with_paths:
      return graphdef, leaves
    pairs = list(zip(map(tuple, paths), leaves, strict=True))
    if not filters:
      return graphdef, FlatState(pairs)
    preds = [filterlib.to_predicate(f) for f in filters]
    groups: list[list] = [[] for _ in preds]
    for path, leaf in pairs:
      for group, pred in zip(groups, preds, strict=True):
        if pred(path, leaf):
          group.append((path, leaf))
          break
    return (graphdef, *(FlatState(g) for g in groups))


class MergeContext:
  """``with nnx.merge_context(tag, inner) as ctx: ctx.merge(graphdef, *states)``.

  Args:
    ctxtag: the update context's tag (``None``: plain merges).
    index_ref: the nodes this context's merges have built, by index.
    is_inner: ``True`` for the merge inside the transform, ``False`` for the one that
      updates the outer objects.
  """

  def __init__(self, ctxtag: Any = None, index_ref: dict | None = None,
               is_inner: bool | None = None):
    self.ctxtag = ctxtag
    self.index_ref: dict = {} if index_ref is None else index_ref
    self.is_inner = is_inner

  @property
  def inner(self) -> bool | None:
    return self.is_inner

  def __enter__(self) -> MergeContext:
    return self

  def __exit__(self, *exc: Any) -> None:
    if self.ctxtag is not None and _context(self.ctxtag) is not None:
      if self.is_inner is None:
        raise ValueError("merge_context(tag, inner): say inner=True or False with a tag.")
      _context(self.ctxtag).unflatten_end(self.index_ref, self.is_inner)

  def merge(self, graphdef: GraphDef, state: Any = None, /, *states: Any) -> Any:
    """The node, rebuilt from ``graphdef`` and the States (copies of their Variables)."""
    state = {} if state is None else state
    if graphdef.root[0] in ("var", "array"):  # a lone leaf: its State is the leaf itself
      return merge(graphdef, state, *states, copy=True)
    return self._build(graphdef, leaves_by_path(graphdef, _flat((state, *states))))

  def unflatten(self, graphdef: GraphDef, flat_state: Any, /, *flat_states: Any) -> Any:
    """The node, rebuilt from ``graphdef`` and flat states (``(path, leaf)`` pairs) or one
    list of leaves in order.

    Raises:
      ValueError: several flat states where the first is a list of leaves.
    """
    if type(flat_state) is list:
      if flat_states:
        raise ValueError("MergeContext.unflatten: one list of leaves, or flat states.")
      return self._build(graphdef, flat_state)
    flat: dict = {}
    for f in (flat_state, *flat_states):
      flat.update((tuple(p), v) for p, v in f)
    return self._build(graphdef, leaves_by_path(graphdef, flat))

  def _build(self, graphdef: GraphDef, leaves: list) -> Any:
    ctx = _context(self.ctxtag)
    outer = graphdef.outer_index
    existing = None
    if ctx is not None and outer is not None and ctx.outer_index_outer_ref and not self.is_inner:
      existing = {j: ctx.outer_index_outer_ref[i] for j, i in enumerate(outer)
                  if i >= 0 and j not in self.index_ref}
      graphdef = graphdef.with_no_outer_index()
    root, refs = unflatten(graphdef, leaves, existing, seed=self.index_ref)
    self.index_ref.update((i, r) for i, r in enumerate(refs) if r is not None)
    return root


def split_context(ctxtag: Any = None) -> SplitContext:
  """A split context for the update context ``ctxtag`` (plain splits without one)."""
  ctx = _context(ctxtag)
  is_inner = ctx.outer_ref_outer_index is not None if ctx is not None else None
  return SplitContext(ctxtag, RefMap(), is_inner)


def merge_context(ctxtag: Any = None, inner: bool | None = None) -> MergeContext:
  """A merge context for the update context ``ctxtag``: ``inner=True`` builds the inner
  copy, ``inner=False`` applies the result to the outer objects."""
  return MergeContext(ctxtag, {}, inner)
