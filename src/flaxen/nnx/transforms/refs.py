"""Mutable array references (``jax.Ref``) in the output of ``nnx.jit``.

``jax.jit`` takes a ``jax.Ref`` argument (the function may write into it) but cannot return
one. Inside the traced function, a Ref of the output that is one of the arguments leaves as
a static marker holding its argument position, and is put back as that same object; a Ref
made inside leaves as its value and becomes a new Ref outside.
"""

from __future__ import annotations

from typing import Any

import jax

from flaxen.nnx.object import is_graph_node

__all__ = ["take_refs", "restore_refs"]


def _is_ref(x: Any) -> bool:
  return isinstance(x, jax.Ref)


def _stop(x: Any) -> bool:
  # Graph objects are not entered: they may be cyclic (m.ref = m), and hold no jax.Refs.
  return is_graph_node(x) or type(x) in (_ArgRef, _NewRef)


class _ArgRef:
  """An output Ref that was the argument leaf ``index``."""

  __slots__ = ("index",)

  def __init__(self, index: int):
    self.index = index

  def __hash__(self) -> int:
    return hash(self.index)

  def __eq__(self, other: object) -> bool:
    return isinstance(other, _ArgRef) and other.index == self.index


jax.tree_util.register_static(_ArgRef)


class _NewRef:
  """An output Ref made inside the function: its value."""

  __slots__ = ("value",)

  def __init__(self, value: Any):
    self.value = value


jax.tree_util.register_pytree_node(_NewRef, lambda r: ((r.value,), None),
                                   lambda _, children: _NewRef(children[0]))


def take_refs(out: Any, arg_leaves: list) -> tuple[Any, bool]:
  """``out`` with its Refs replaced by markers (traced side); whether it had any."""
  if not any(map(_is_ref, jax.tree.leaves(out, is_leaf=_stop))):
    return out, False
  where = {id(x): i for i, x in enumerate(arg_leaves) if _is_ref(x)}

  def mark(x: Any) -> Any:
    if not _is_ref(x):
      return x
    i = where.get(id(x))
    return _NewRef(x[...]) if i is None else _ArgRef(i)

  return jax.tree.map(mark, out, is_leaf=_stop), True


def restore_refs(out: Any, arg_leaves: list) -> Any:
  """Outside: markers back into Refs (the argument's own, or a new one)."""

  def back(x: Any) -> Any:
    if type(x) is _ArgRef:
      return arg_leaves[x.index]
    if type(x) is _NewRef:
      return jax.new_ref(x.value)
    return x

  return jax.tree.map(back, out, is_leaf=_stop)
