"""``nnx.cond``, ``nnx.switch``, ``nnx.fori_loop``, ``nnx.while_loop``: ``jax.lax`` control
flow over operands and loop carries that contain graph objects.

The graph objects' state values travel through the JAX primitive with the other leaves:
each branch (or loop iteration) rebuilds the objects, runs the user function and returns
every state value, changed or not, so all branches and iterations agree on the structure
(a BatchStat updated in one branch only comes out of the other one unchanged). The caller's
objects are updated afterwards.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> count = nnx.Variable(jnp.array(0))
>>> def body(i, c):
...   c.value += i
...   return c
>>> _ = nnx.fori_loop(0, 4, body, count)
>>> int(count.value)
6
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax

from flaxen.errors.nnx import LoopStructureError
from flaxen.nnx.graph_mode import resolve_graph
from flaxen.nnx.transforms import lift
from flaxen.nnx.transforms.tree_mode import check_unique

__all__ = ["cond", "switch", "fori_loop", "while_loop"]


class _Trace:
  """What the traced branches / loop body returned: output shapes, and the (unchanged)
  graph update to write the final state back with."""

  def __init__(self, name: str, g: lift.GraphArgs):
    self.name, self.g = name, g
    self.shapes: list = []
    self.update: lift.GraphUpdate | None = None

  def run(self, call: Callable, leaves: list, values: list) -> tuple:
    """Rebuilds the graph, runs ``call(tree)``, returns ``(out_leaves, new_values)``."""
    tree, inner, refs = self.g.rebuild(leaves, values)
    out_leaves, treedef, positions, out_nodes = lift.take_nodes(call(tree))
    new_values, self.update = lift.capture(inner, refs, self.g.graphdef, [])
    if not self.update.same:
      raise LoopStructureError(self.name,
                               "the function changed the structure of its graph objects")
    sources = []  # which argument object each returned object is
    for node in out_nodes:
      matches = [k for k, n in enumerate(inner) if n is node]
      if not matches:
        raise LoopStructureError(self.name, f"the function returned a {type(node).__name__} "
                                 "that is not one of its inputs")
      sources.append(matches[0])
    self.shapes.append((treedef, positions, tuple(sources)))
    return out_leaves, new_values

  def branch(self, fun: Callable, leaves: list, values: list) -> tuple:
    return self.run(lambda ops: fun(*ops), leaves, values)

  def step(self, call: Callable, carry: tuple) -> tuple:
    out = self.run(call, *carry)
    if self.shapes[-1] != self._carry_shape():
      raise LoopStructureError(self.name, "the body's output is not shaped like its input "
                               "(with the same graph objects at the same places)")
    return out

  def _carry_shape(self) -> tuple:
    # each place holds the first argument object that is its node (one object passed twice
    # is found at its first place both times, as ``run`` finds it)
    nodes = self.g.nodes
    first = tuple(next(i for i, n in enumerate(nodes) if n is node) for node in nodes)
    return self.g.treedef, self.g.positions, first

  def finish(self, out_leaves: list, new_values: list, loop: bool = False) -> Any:
    shape = self._carry_shape() if loop else self.shapes[0]
    if any(s != shape for s in self.shapes):
      raise LoopStructureError(self.name, "the branches return differently structured outputs")
    self.g.write_back(self.update, new_values)
    treedef, positions, sources = shape
    for p, k in zip(positions, sources, strict=True):
      out_leaves[p] = self.g.nodes[k]
    return treedef.unflatten(out_leaves)


def _args(name: str, operands: Any, graph: bool | None) -> lift.GraphArgs:
  """The operands taken apart; in tree mode each Variable may appear once among them."""
  if not resolve_graph(graph):
    check_unique(operands, f"nnx.{name}")
  return lift.GraphArgs(operands)


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any,
         graph: bool | None = None, graph_updates: bool | None = None, **kwargs: Any) -> Any:
  """``jax.lax.cond`` whose operands may contain graph objects (updated in place).

  ``graph=False`` (tree mode) treats Modules as pytrees: a Variable may appear only once
  among the operands. The branches may change Variable values only, in every mode
  (``graph_updates`` is accepted for Flax's signature).

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> stat = nnx.BatchStat(jnp.array(1.0))
  >>> def grow(s, x):
  ...   s.value = s.value + x
  ...   return x
  >>> nnx.cond(True, grow, lambda s, x: -x, stat, 2.0), stat.value
  (Array(2., dtype=float32, weak_type=True), Array(3., dtype=float32, weak_type=True))
  """
  t = _Trace("cond", _args("cond", operands, graph))
  out = jax.lax.cond(pred, functools.partial(t.branch, true_fun),
                     functools.partial(t.branch, false_fun), t.g.leaves, t.g.values, **kwargs)
  return t.finish(*out)


def switch(index: Any, branches: Sequence[Callable], *operands: Any, graph: bool | None = None,
           graph_updates: bool | None = None) -> Any:
  """``jax.lax.switch`` whose operands may contain graph objects (updated in place); ``graph``
  and ``graph_updates`` as in ``cond``."""
  t = _Trace("switch", _args("switch", operands, graph))
  out = jax.lax.switch(index, [functools.partial(t.branch, b) for b in branches], t.g.leaves,
                       t.g.values)
  return t.finish(*out)


def fori_loop(lower: Any, upper: Any, body_fun: Callable, init_val: Any, *,
              unroll: int | bool | None = None, graph: bool | None = None,
              graph_updates: bool | None = None) -> Any:
  """``jax.lax.fori_loop`` whose carry may contain graph objects (updated in place).

  ``body_fun(i, val)`` must return ``val``'s structure, with the same graph objects (and the
  same Variables in them, in every mode); ``graph`` and ``graph_updates`` as in ``cond``.
  """
  t = _Trace("fori_loop", _args("fori_loop", init_val, graph))

  def step(i: Any, carry: tuple) -> tuple:
    return t.step(lambda val: body_fun(i, val), carry)

  out = jax.lax.fori_loop(lower, upper, step, (t.g.leaves, t.g.values), unroll=unroll)
  return t.finish(*out, loop=True)


def while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any, *,
               graph: bool | None = None, graph_updates: bool | None = None) -> Any:
  """``jax.lax.while_loop`` whose carry may contain graph objects (updated in place).

  ``cond_fun`` sees the objects as they are at the start of each iteration; changes it
  makes are dropped. ``graph`` and ``graph_updates`` as in ``fori_loop``.
  """
  t = _Trace("while_loop", _args("while_loop", init_val, graph))

  def test(carry: tuple) -> Any:
    return cond_fun(t.g.rebuild(*carry)[0])

  out = jax.lax.while_loop(test, functools.partial(t.step, body_fun), (t.g.leaves, t.g.values))
  return t.finish(*out, loop=True)
