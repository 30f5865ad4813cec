"""Builders: the common shapes of a GraphDef compiled into straight-line Python.

``merge`` rebuilds a graph from a GraphDef and a nested State. The interpreter in
``graph._rebuild`` walks the GraphDef's tuple tree for that, dispatching on each entry's
tag; most of its time goes to the dispatch, not to making the objects. Most of a model's
entries are *flat*: a layer whose children are static attributes and Variables of its own
(``Linear``, ``BatchNorm``), or a dict of Variables (an optax state per param). The flat
entries of a GraphDef that have the same shape (class, static attributes, keys, Variable
types and metadata) are built by one function, written as source once and compiled: a
few statements per Variable, the static attributes as one dict update, no dispatch.

The second time a GraphDef is merged, it gets a plan: which of its entries are flat, with
their builders; the interpreter calls a builder where the plan has one. Compiling one
function for a whole model instead would cost the Python compiler about 100 µs per
Variable; shapes repeat, so this costs a few milliseconds per model.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> from flaxen.nnx import graph_builder
>>> graphdef, state = nnx.split(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
>>> [builder.__name__ for builder, _ in graph_builder.plan(graphdef).values()]
['build']
>>> model = graph_builder.build(graphdef, state, graph_builder.plan(graphdef))
>>> type(model).__name__, model.kernel.value.shape
('Linear', (2, 3))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flaxen.nnx import graph
from flaxen.nnx.variables import Variable

__all__ = ["plan", "build", "merge_state"]

def merge_state(graphdef: graph.GraphDef, state: Any, share: bool = False
                ) -> tuple[Any, bool]:
  """``(root, checked)``: the root built from ``state`` (``None`` when a leaf is missing),
  with the GraphDef's plan from its second merge on. ``checked``: ``state`` is known to
  hold no leaf the GraphDef has no place for (the plan compares each mapping's size).
  ``share``: the State's Variables go into the graph themselves, not copies."""
  flat = graphdef._plan
  if flat is None:  # the first merge of this GraphDef: it may be the only one
    graphdef._plan = 0
  elif flat == 0:
    flat = graphdef._plan = plan(graphdef)
  if flat:
    try:
      return build(graphdef, state, flat, share), True
    except graph.Recount:  # more keys than needed somewhere: the caller counts leaves
      pass
  built = graph.unflatten_state(graphdef, state, share=share)
  return (None if built is None else built[0]), False


def build(graphdef: graph.GraphDef, state: Any, flat: dict | None, share: bool = False
          ) -> Any:
  """The root built from ``state`` with the plan ``flat`` (from :func:`plan`)."""
  try:
    built = graph.unflatten_state(graphdef, state, flat, share)
  except KeyError:  # a builder found a key missing: the caller's flat lookup says which
    return None
  return None if built is None else built[0]


def plan(graphdef: graph.GraphDef) -> dict[int, tuple[Callable | None, int]]:
  """``{id(entry): (builder, first index)}`` for the flat entries of the GraphDef and
  ``{id(entry): (None, number of children with leaves)}`` for its other containers."""
  flat: dict[int, tuple[Callable | None, int]] = {}
  # Per plan, not process-wide: a shape holds its static values (a bound method, a closure
  # over a model), which must not outlive the GraphDef.
  shapes: dict[tuple, Callable] = {}

  def visit(d: tuple) -> bool:
    """Adds ``d`` (and what is under it) to the plan; whether it holds leaves."""
    tag = d[0]
    if tag in ("static", "ref", "var", "array"):
      return tag == "var" or tag == "array"
    found = _flat_shape(d)
    if found is None:
      with_leaves = sum([visit(child) for _, child in d[-1]])
      flat[id(d)] = (None, with_leaves)
      return with_leaves > 0
    shape, first = found
    builder = shapes.get(shape)
    if builder is None:
      builder = shapes[shape] = _compile(shape)
    flat[id(d)] = (builder, first)
    return any(len(c) == 3 for c in shape[-1])

  visit(graphdef.root)
  return flat


def _flat_shape(d: tuple) -> tuple[tuple, int] | None:
  """``(shape, index of the first Object or Variable)`` when ``d`` is flat: a plain Object
  or a dict / list / tuple whose children are statics and Variables seen there first."""
  tag = d[0]
  if tag == "node":
    if graph._KINDS.get(d[2]) != graph._NODE:
      return None
    first, items = d[1], d[4][d[3]:]
  elif tag in ("dict", "list", "tuple"):
    first, items = None, d[1]
  else:
    return None
  children = []
  expected = None if first is None else first + 1
  for k, child in items:
    if child[0] == "var":
      if expected is None:
        first = expected = child[1]
      if child[1] != expected:  # a Variable met before, or indices not in a row
        return None
      expected += 1
      children.append((k, child[2], child[3]))
    elif child[0] == "static" and tag != "node":
      children.append((k, child[1]))
    else:
      return None
  head = (tag, d[2], d[4][:d[3]]) if tag == "node" else (tag,)
  return (*head, tuple(children)), first or 0


class _Writer:
  """The source of one builder ``f(s, trace, refs, i, share)``: ``s`` is the entry's mapping
  in the State, ``i`` the index of its first Object or Variable, ``share``: a Variable of
  the State goes in itself, not a copy."""

  def __init__(self):
    self.lines: list[str] = []
    self.names: dict[str, Any] = {"new": object.__new__, "variable": _variable,
                                  "Recount": graph.Recount, "Variable": Variable}

  def const(self, value: Any) -> str:
    name = f"c{len(self.names)}"
    self.names[name] = value
    return name

  def key(self, k: Any) -> str:
    return repr(k) if type(k) is str or type(k) is int else self.const(k)

  def variable(self, k: Any, cls: type, meta_items: tuple, offset: int) -> str:
    c, name = self.const(cls), f"v{offset}"
    meta = self.const({mk: graph._unwrap(mv) for mk, mv in meta_items})
    self.lines += [
      f"leaf = s[{self.key(k)}]",
      f"if share and isinstance(leaf, Variable): {name} = leaf",
      f"elif type(leaf) is {c}:",  # the common case, inlined: a copy of the State's Variable
      f"  ld = leaf.__dict__; {name} = new({c}); vd = {name}.__dict__",
      "  vd['_raw'], vd['_meta'], vd['_nnx_version'], vd['_trace'] = "
      "ld['_raw'], dict(ld['_meta']), 0, trace",
      f"else: {name} = variable(leaf, {c}, {meta}, trace)",
      f"refs[i + {offset}] = {name}",
    ]
    return name


def _compile(shape: tuple) -> Callable:
  w = _Writer()
  tag, children = shape[0], shape[-1]
  w.lines.append(f"if len(s) != {sum(len(c) == 3 for c in children)}: raise Recount")
  if tag == "node":
    cls, statics = shape[1], shape[2]
    fixed = w.const({"_nnx_version": 0, **{k: graph._unwrap(v) for k, (_, v) in statics}})
    layout = w.const((0, statics, tuple([c[0] for c in children])))
    w.lines.append(f"obj = refs[i] = new({w.const(cls)}); od = obj.__dict__; od.update({fixed})")
    for n, (k, var_cls, meta_items) in enumerate(children, start=1):
      w.lines.append(f"od[{w.key(k)}] = {w.variable(k, var_cls, meta_items, n)}")
    w.lines += [f"od['_nnx_layout'] = {layout}", "return obj"]
  else:
    values, n = [], 0
    for child in children:
      if len(child) == 3:
        values.append(w.variable(child[0], child[1], child[2], n))
        n += 1
      else:
        values.append(w.const(graph._unwrap(child[1])))
    if tag == "dict":
      pairs = ", ".join(f"{w.key(c[0])}: {v}" for c, v in zip(children, values, strict=True))
      w.lines.append(f"return {{{pairs}}}")
    elif tag == "list":
      w.lines.append(f"return [{', '.join(values)}]")
    else:
      w.lines.append(f"return ({''.join(v + ', ' for v in values)})")
  source = "def build(s, trace, refs, i, share):\n" + "\n".join("  " + line for line in w.lines)
  exec(compile(source, f"<builder of a {tag}>", "exec"), w.names)  # noqa: S102 -- our source
  return w.names["build"]


def _variable(leaf: Any, cls: type, meta: dict, trace: Any) -> Variable:
  """The Variable for a leaf that is not a Variable of the GraphDef's class: a Variable of
  another class gives its value and metadata, a raw value takes the GraphDef's metadata."""
  if isinstance(leaf, Variable):
    ld = leaf.__dict__
    value, meta = ld["_raw"], ld["_meta"]
  elif graph._mapping(leaf) is not graph._EMPTY:  # a State where a leaf goes
    raise KeyError(leaf)
  else:
    value = leaf
  var = object.__new__(cls)
  vd = var.__dict__
  vd["_raw"], vd["_meta"], vd["_nnx_version"], vd["_trace"] = value, dict(meta), 0, trace
  return var
