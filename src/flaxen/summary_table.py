"""The summary table that ``nn.tabulate`` and ``nnx.tabulate`` render (shared by both).

A summary is a list of :class:`Row` (one per recorded module call) plus the variables of
the whole model; :func:`render` turns it into a rich table and returns it as text.
Values are shown by shape and dtype only (``float32[16,9]``), never by content.

>>> import jax.numpy as jnp
>>> from flaxen.summary_table import Row, render
>>> row = Row(("dense",), "Dense", (jnp.ones((2, 3)),), {}, jnp.ones((2, 4)),
...           {"params": {"kernel": jnp.ones((3, 4))}}, {"params": (12, 48)})
>>> print(render("Model Summary", [row], {"params": (12, 48)}))  # doctest: +ELLIPSIS
                   Model Summary...
...│ dense │ Dense  │ float32[2,3] │ float32[2,4] │ kernel: float32[3,4] │...
...Total Parameters: 12 (48 B)...
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import rich.console
import rich.table

__all__ = ["Row", "render", "shape_repr", "size_and_bytes", "value_repr", "flops_of", "attribute",
           "split_arrays", "abstract", "with_backward"]


@dataclasses.dataclass
class Row:
  """One module call: where, what, its inputs and output, and the variables it owns.

  ``variables`` maps a collection (or Variable type) name to a nested dict of the leaves
  this module owns; ``counts`` maps it to ``(number of elements, bytes)`` of everything
  counted on this row (its own variables, plus its descendants' when deeper rows are
  folded into it).
  """

  path: tuple
  module_type: str
  args: tuple
  kwargs: Mapping[str, Any]
  output: Any
  variables: Mapping[str, Any]
  counts: Mapping[str, tuple[int, int]]
  flops: float | None = None
  vjp_flops: float | None = None


def _is_array(x: Any) -> bool:
  return hasattr(x, "shape") and hasattr(x, "dtype")


def _nbytes(x: Any) -> int:
  dtype = x.dtype
  itemsize = getattr(dtype, "itemsize", None) or np.dtype(dtype).itemsize
  return int(np.prod(x.shape, dtype=np.int64)) * itemsize


def size_and_bytes(tree: Any) -> tuple[int, int]:
  """``(number of elements, bytes)`` over the array leaves of ``tree``."""
  leaves = [x for x in jax.tree.leaves(tree) if _is_array(x)]
  return (sum(int(np.prod(x.shape, dtype=np.int64)) for x in leaves),
          sum(_nbytes(x) for x in leaves))


def shape_repr(x: Any) -> str:
  """``float32[16,9]`` for an array (or ShapeDtypeStruct); ``repr`` for anything else."""
  if _is_array(x):
    dtype = x.dtype
    name = getattr(dtype, "name", None) or str(dtype)
    return f"{name}[{','.join(str(d) for d in x.shape)}]"
  leaves = jax.tree.leaves(x)
  if leaves and leaves[0] is not x:  # a box such as nn.Partitioned: its arrays by shape
    names = f", names={x.names}" if hasattr(x, "names") else ""
    return f"{type(x).__name__}({', '.join(shape_repr(v) for v in leaves)}{names})"
  return repr(x)


def value_repr(x: Any, indent: str = "") -> str:
  """Arrays by shape, containers as indented ``key: value`` lines."""
  if isinstance(x, Mapping):
    lines = []
    for k, v in x.items():
      body = value_repr(v, indent + "  ")
      nested = isinstance(v, Mapping) and bool(v) or "\n" in body
      lines.append(f"{indent}{k}:\n{body}" if nested else f"{indent}{k}: {body.strip()}")
    return "\n".join(lines)
  if isinstance(x, list | tuple) and not hasattr(x, "_fields"):
    if len(x) == 1:
      return indent + value_repr(x[0]).strip()
    return "\n".join(f"{indent}- {value_repr(v, indent + '  ').strip()}" for v in x)
  return indent + shape_repr(x)


def _call_repr(args: tuple, kwargs: Mapping[str, Any]) -> str:
  parts = [value_repr(args)] if args else []
  if kwargs:
    parts.append(value_repr(dict(kwargs)))
  return "\n".join(parts)


def abstract(tree: Any) -> Any:
  """``tree`` with every array (or tracer) replaced by its ``jax.ShapeDtypeStruct``."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype) if _is_array(x) else x,
                      tree)


def split_arrays(tree: Any) -> tuple[list, Any]:
  """``(array leaves, rebuild)``: ``rebuild(new_arrays)`` puts them back among the rest."""
  leaves, treedef = jax.tree.flatten(tree)
  where = [i for i, x in enumerate(leaves) if _is_array(x)]

  def rebuild(arrays: list) -> Any:
    new = list(leaves)
    for i, x in zip(where, arrays, strict=True):
      new[i] = x
    return treedef.unflatten(new)

  return [leaves[i] for i in where], rebuild


def _owner(path: tuple, candidates: set) -> tuple:
  """The longest prefix of ``path`` in ``candidates``; the root ``()`` is always one."""
  return next((path[:n] for n in range(len(path), 0, -1) if path[:n] in candidates), ())


def _nest(flat: Mapping[tuple, Any]) -> dict:
  out: dict = {}
  for path, leaf in flat.items():
    node = out
    for key in path[:-1]:
      node = node.setdefault(str(key), {})
    node[str(path[-1]) if path else ""] = leaf
  return out


def attribute(paths: list[tuple], flat: Mapping[str, Mapping[tuple, Any]], depth: int | None
              ) -> tuple[dict, dict]:
  """Which row owns each variable.

  Args:
    paths: the module path of every recorded call (rows deeper than ``depth`` included).
    flat: ``{collection: {variable path: leaf}}`` of the whole model.
    depth: rows deeper than this are not shown; their variables fold into the deepest
      shown ancestor.

  Returns:
    ``(own, counts)``: per path, ``{collection: nested dict}`` of the variables whose
    module is that path, and ``{collection: (elements, bytes)}`` of the variables counted
    on it (its own plus the folded ones).
  """
  every = set(paths) | {()}
  shown = {p for p in every if depth is None or len(p) <= depth}
  own: dict = {p: {} for p in every}
  counted: dict = {p: {} for p in every}
  for col, leaves in flat.items():
    for path, leaf in leaves.items():
      module = _owner(path[:-1], every)
      own[module].setdefault(col, {})[path[len(module):]] = leaf
      counted[_owner(path[:-1], shown)].setdefault(col, []).append(leaf)
  own = {p: {c: _nest(v) for c, v in cols.items()} for p, cols in own.items()}
  counts = {p: {c: size_and_bytes(v) for c, v in cols.items()} for p, cols in counted.items()}
  return own, counts


def _bytes_repr(n: int) -> str:
  value, unit = float(n), "B"
  for bigger in ("KB", "MB", "GB", "TB"):
    if value < 1000:
      break
    value, unit = value / 1000, bigger
  return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def _size_repr(size: int, nbytes: int) -> str:
  return f"{size:,} ({_bytes_repr(nbytes)})"


def _flops_repr(flops: float | None) -> str:
  return "n/a" if flops is None else f"{int(flops):,}"


def flops_of(fn: Any, *args: Any) -> float:
  """XLA's FLOP count of ``fn(*args)`` (``args`` may be ShapeDtypeStructs)."""
  cost = jax.jit(fn).lower(*args).cost_analysis()
  if isinstance(cost, list | tuple):  # older JAX: one dict per computation
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", 0.0))


def with_backward(forward: Any) -> Any:
  """``forward`` followed by its backward pass (cotangent: ones) over the float leaves."""

  def run(*primals: Any) -> Any:
    leaves, treedef = jax.tree.flatten(primals)
    where = [i for i, x in enumerate(leaves) if _is_array(x) and jnp.issubdtype(x.dtype,
                                                                                  jnp.inexact)]

    def partial(diff: list) -> Any:
      new = list(leaves)
      for i, x in zip(where, diff, strict=True):
        new[i] = x
      return forward(*treedef.unflatten(new))

    y, pull = jax.vjp(partial, [leaves[i] for i in where])
    return pull(jax.tree.map(_ones_like, y))

  return run


def _ones_like(y: Any) -> Any:
  if jnp.issubdtype(y.dtype, jnp.inexact):
    return jnp.ones(y.shape, y.dtype)
  return np.zeros(y.shape, jax.dtypes.float0)


def render(title: str, rows: list[Row], totals: Mapping[str, tuple[int, int]], *,
           show_flops: bool = False, show_vjp_flops: bool = False,
           console_kwargs: Mapping[str, Any] | None = None,
           table_kwargs: Mapping[str, Any] | None = None,
           column_kwargs: Mapping[str, Any] | None = None) -> str:
  """The table as text: one row per call, a column per collection, a totals row.

  Args:
    title: shown above the table.
    rows: the calls, in order.
    totals: ``(elements, bytes)`` per collection over the whole model; the column order.
    show_flops, show_vjp_flops: add the FLOPs columns.
    console_kwargs: passed to ``rich.console.Console`` (e.g. ``{"width": 120}``); by
      default the console is as wide as the table needs.
    table_kwargs, column_kwargs: passed to ``rich.table.Table`` / ``Table.add_column``.
  """
  table = rich.table.Table(title=title, show_header=True, show_lines=True,
                           **{"show_footer": False, **(table_kwargs or {})})
  column_kwargs = dict(column_kwargs or {})
  headers = ["path", "module", "inputs", "outputs"]
  if show_flops:
    headers.append("flops")
  if show_vjp_flops:
    headers.append("vjp_flops")
  for name in [*headers, *totals]:
    table.add_column(name, **column_kwargs)
  for row in rows:
    cells = ["/".join(str(p) for p in row.path), row.module_type,
             _call_repr(row.args, row.kwargs), value_repr(row.output)]
    if show_flops:
      cells.append(_flops_repr(row.flops))
    if show_vjp_flops:
      cells.append(_flops_repr(row.vjp_flops))
    for col in totals:
      own = row.variables.get(col)
      count = row.counts.get(col)
      text = value_repr(own) if own else ""
      if count and count[0]:
        text = f"{text}\n\n{_size_repr(*count)}" if text else _size_repr(*count)
      cells.append(text)
    table.add_row(*cells)
  table.add_row(*([""] * (len(headers) - 1)), "Total",
                *(_size_repr(*totals[c]) for c in totals))
  elements = sum(t[0] for t in totals.values())
  nbytes = sum(t[1] for t in totals.values())
  table.caption = f"Total Parameters: {_size_repr(elements, nbytes)}"
  kwargs = {"force_terminal": False, "force_jupyter": False, "color_system": None,
            **(console_kwargs or {})}
  if "width" not in kwargs:
    probe = rich.console.Console(width=10_000, **kwargs)
    kwargs["width"] = probe.measure(table).maximum
  out = io.StringIO()
  console = rich.console.Console(file=out, **kwargs)
  console.print(table)
  return out.getvalue()
