"""``nnx.tabulate``: a table of the submodule calls of an NNX model and their Variables.

The model is split, merged again inside ``jax.eval_shape`` (so nothing is computed and the
caller's model is left as it was) and called while the ``__call__`` of every Module class
in it is temporarily wrapped to record each call's path, inputs and output shapes. Each
Variable belongs to the deepest called module whose path prefixes it; columns are the
Variable types (``Param``, ``BatchStat``, ...).

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> model = nnx.Sequential(nnx.Linear(9, 4, rngs=nnx.Rngs(0)), nnx.relu,
...                        nnx.Linear(4, 2, rngs=nnx.Rngs(0)))
>>> print(nnx.tabulate(model, jnp.ones((16, 9))).splitlines()[-1].strip())
Total Parameters: 50 (200 B)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import jax

from flaxen import summary_table as st
from flaxen.nnx.graphlib import merge, split
from flaxen.nnx.module import iter_modules

__all__ = ["tabulate", "summarize"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def tabulate(obj: Any, *input_args: Any, depth: int | None = None, method: str = "__call__",
             row_filter: Callable[[st.Row], bool] | None = None,
             console_kwargs: Mapping[str, Any] | None = None,
             table_kwargs: Mapping[str, Any] = _EMPTY, column_kwargs: Mapping[str, Any] = _EMPTY,
             compute_flops: bool = False, compute_vjp_flops: bool = False,
             **input_kwargs: Any) -> str:
  """The summary table of ``obj.method(*input_args, **input_kwargs)`` as text.

  Args:
    obj: the model (a Module).
    *input_args, **input_kwargs: the call's inputs (arrays or ``jax.ShapeDtypeStruct``).
    depth: show calls at most this deep (the root is depth 0); the Variables of deeper
      modules are counted on their shown ancestor. None shows all.
    method: the root's method to call.
    row_filter: keep only the rows (:class:`flaxen.summary_table.Row`) it returns True for.
    console_kwargs: passed to ``rich.console.Console`` (e.g. ``{"width": 120}``).
    table_kwargs, column_kwargs: passed to ``rich.table.Table`` and its columns.
    compute_flops: add a column with XLA's FLOP count of each call.
    compute_vjp_flops: add a column with the FLOPs of each call's forward plus backward pass.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> table = nnx.tabulate(nnx.Linear(4, 3, rngs=nnx.Rngs(0)), jnp.ones((2, 4)))
  >>> "kernel: float32[4,3]" in table, "Total Parameters: 15 (60 B)" in table
  (True, True)
  """
  rows, totals = summarize(obj, *input_args, depth=depth, method=method,
                           compute_flops=compute_flops, compute_vjp_flops=compute_vjp_flops,
                           **input_kwargs)
  if row_filter is not None:
    rows = [row for row in rows if row_filter(row)]
  return st.render(f"{type(obj).__name__} Summary", rows, totals,
                   show_flops=compute_flops, show_vjp_flops=compute_vjp_flops,
                   console_kwargs=console_kwargs, table_kwargs=table_kwargs,
                   column_kwargs=column_kwargs)


def summarize(obj: Any, *input_args: Any, depth: int | None = None, method: str = "__call__",
              compute_flops: bool = False, compute_vjp_flops: bool = False,
              **input_kwargs: Any) -> tuple[list[st.Row], dict[str, tuple[int, int]]]:
  """The table's content: its rows and ``{Variable type: (elements, bytes)}`` totals."""
  graphdef, state = split(obj)
  calls: list[dict] = []
  arrays, rebuild = st.split_arrays((state, input_args, input_kwargs))

  def run(arrays):
    state, args, kwargs = rebuild(arrays)
    model = merge(graphdef, state, copy=True)  # the summary must not touch obj's Variables
    with _recording(model, method, calls):
      return getattr(model, method)(*args, **kwargs)

  jax.eval_shape(run, arrays)
  flat: dict[str, dict] = {}
  for path, var in state.flat_state():
    flat.setdefault(type(var).__name__, {})[tuple(path)] = var.value
  own, counts = st.attribute([c["path"] for c in calls], flat, depth)
  modules = dict(iter_modules(obj))
  rows, seen = [], set()
  for call in calls:
    path = call["path"]
    if (depth is not None and len(path) > depth) or path in seen:
      continue
    seen.add(path)
    row = st.Row(path, call["type"], call["args"], call["kwargs"], call["output"],
                 own[path], counts[path])
    if compute_flops:
      row.flops = _flops(modules[path], call, vjp=False)
    if compute_vjp_flops:
      row.vjp_flops = _flops(modules[path], call, vjp=True)
    rows.append(row)
  cols = sorted(flat, key=lambda c: c != "Param")  # Param first, then graph order
  return rows, {col: st.size_and_bytes(list(flat[col].values())) for col in cols}


@contextlib.contextmanager
def _recording(model: Any, method: str, calls: list[dict]) -> Iterator[None]:
  """Wrap ``__call__`` of every Module class in ``model`` (``method`` on the root's class)."""
  paths = {id(m): tuple(p) for p, m in iter_modules(model)}
  active: list[int] = []
  patched: list[tuple[type, str, Any]] = []

  def wrap(fn: Any, name: str) -> Any:
    def recorded(self, *args, **kwargs):
      key = id(self)
      if key not in paths or (active and active[-1] == key):  # super() calls: once
        return fn(self, *args, **kwargs)
      call = {"path": paths[key], "type": type(self).__name__, "method": name,
              "args": st.abstract(args), "kwargs": st.abstract(kwargs), "output": None}
      calls.append(call)
      active.append(key)
      try:
        y = fn(self, *args, **kwargs)
      finally:
        active.pop()
      call["output"] = st.abstract(y)
      return y

    return recorded

  targets = {(type(m), "__call__") for _, m in iter_modules(model)}
  targets.add((type(model), method))
  for cls, name in targets:
    fn = getattr(cls, name, None)
    if fn is None:
      continue
    patched.append((cls, name, cls.__dict__.get(name)))
    setattr(cls, name, wrap(fn, name))
  try:
    yield
  finally:
    for cls, name, original in reversed(patched):
      if original is None:
        delattr(cls, name)
      else:
        setattr(cls, name, original)


def _flops(module: Any, call: dict, vjp: bool) -> float | None:
  """XLA's FLOPs of this call alone (None when it cannot run outside its parent)."""
  graphdef, state = split(module)
  arrays, rebuild = st.split_arrays((call["args"], call["kwargs"]))

  def forward(state, arrays):
    args, kwargs = rebuild(arrays)
    return getattr(merge(graphdef, state, copy=True), call["method"])(*args, **kwargs)

  try:
    return st.flops_of(st.with_backward(forward) if vjp else forward, st.abstract(state), arrays)
  except Exception:  # noqa: BLE001 - e.g. a call that needs its parent's context
    return None
