"""``nn.tabulate`` / ``Module.tabulate``: a table of the module calls and their variables.

The model is initialized under ``jax.eval_shape`` (no computation, no memory) while a
method interceptor records every module method call: its path, type, input and output
shapes. Each variable then belongs to the deepest recorded module whose path prefixes it.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> class MLP(nn.Module):
...   @nn.compact
...   def __call__(self, x):
...     return nn.Dense(2)(nn.relu(nn.Dense(4)(x)))
>>> text = MLP().tabulate(jax.random.key(0), jnp.ones((16, 9)))
>>> print(text.splitlines()[-1].strip())
Total Parameters: 50 (200 B)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jax

from flaxen import summary_table as st
from flaxen.core.filters import CollectionFilter, DenyList
from flaxen.linen.summary_rows import Row, Table
from flaxen.linen.wrapping import intercept_methods
from flaxen.traverse_util import flatten_dict

__all__ = ["tabulate", "module_tabulate", "summarize", "module_paths", "Row", "Table"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_NOT_INTERMEDIATES = DenyList("intermediates")


@dataclasses.dataclass
class _Call:
  path: tuple
  module: Any  # an unbound clone, to re-run the call alone for its FLOPs
  method: str
  args: tuple
  kwargs: dict
  output: Any = None


def tabulate(module: Any, rngs: Any, depth: int | None = None, show_repeated: bool = False,
             mutable: CollectionFilter = _NOT_INTERMEDIATES,
             console_kwargs: Mapping[str, Any] | None = None,
             table_kwargs: Mapping[str, Any] = _EMPTY, column_kwargs: Mapping[str, Any] = _EMPTY,
             compute_flops: bool = False, compute_vjp_flops: bool = False,
             **kwargs: Any) -> Callable[..., str]:
  """A function of the inputs that returns ``module``'s summary table as text.

  Args:
    module: the module to summarize.
    rngs: a key (the "params" stream) or a dict of streams, as for ``init``.
    depth: show calls at most this deep (the root is depth 0); the variables of deeper
      modules are counted on their shown ancestor. None shows all.
    show_repeated: show every call of a module method, not only the first.
    mutable: the collections ``init`` may create (default: all but intermediates).
    console_kwargs: passed to ``rich.console.Console`` (e.g. ``{"width": 120}``).
    table_kwargs, column_kwargs: passed to ``rich.table.Table`` and its columns.
    compute_flops: add a column with XLA's FLOP count of each call.
    compute_vjp_flops: add a column with the FLOPs of each call's forward plus backward pass.
    **kwargs: passed to ``init`` (``method=`` among them) and on to the method.

  Returns:
    ``fn(*args, **kwargs) -> str``.

  >>> import jax, jax.numpy as jnp
  >>> import flaxen.linen as nn
  >>> table = nn.tabulate(nn.Dense(3), jax.random.key(0))(jnp.ones((2, 4)))
  >>> "kernel: float32[4,3]" in table, "Total Parameters: 15 (60 B)" in table
  (True, True)
  """

  def run(*args: Any, **call_kwargs: Any) -> str:
    options = dict(depth=depth, show_repeated=show_repeated, mutable=mutable,
                   console_kwargs=console_kwargs, table_kwargs=table_kwargs,
                   column_kwargs=column_kwargs, compute_flops=compute_flops,
                   compute_vjp_flops=compute_vjp_flops)
    return module_tabulate(module, rngs, *args, **options, **kwargs, **call_kwargs)

  return run


def module_tabulate(module: Any, rngs: Any, *args: Any, depth: int | None = None,
                    show_repeated: bool = False,
                    mutable: CollectionFilter = _NOT_INTERMEDIATES,
                    console_kwargs: Mapping[str, Any] | None = None,
                    table_kwargs: Mapping[str, Any] = _EMPTY,
                    column_kwargs: Mapping[str, Any] = _EMPTY, compute_flops: bool = False,
                    compute_vjp_flops: bool = False, **kwargs: Any) -> str:
  """``Module.tabulate``: the summary table of ``module`` called on ``args`` (see
  :func:`tabulate`)."""
  rows, totals = summarize(module, rngs, *args, depth=depth, show_repeated=show_repeated,
                           mutable=mutable, compute_flops=compute_flops,
                           compute_vjp_flops=compute_vjp_flops, **kwargs)
  return st.render(f"{type(module).__name__} Summary", rows, totals,
                   show_flops=compute_flops, show_vjp_flops=compute_vjp_flops,
                   console_kwargs=console_kwargs, table_kwargs=table_kwargs,
                   column_kwargs=column_kwargs)


def module_paths(module: Any, rngs: Any, *args: Any, show_repeated: bool = False,
                 mutable: CollectionFilter = _NOT_INTERMEDIATES,
                 **kwargs: Any) -> dict[str, Any]:
  """``{"a/b": unbound copy of the module at a/b}`` for every module ``init`` calls (``""``
  is the root), found under ``jax.eval_shape`` (no computation)."""
  del show_repeated  # each path appears once either way
  rngs = dict(rngs) if isinstance(rngs, Mapping) else {"params": rngs}
  method = kwargs.pop("method", None)
  found: dict[str, Any] = {}

  def record(next_fun, call_args, call_kwargs, context):
    mod = context.module
    if mod.scope is not None:
      found.setdefault("/".join(mod.scope.path), mod.clone(parent=None))
    return next_fun(*call_args, **call_kwargs)

  arrays, rebuild = st.split_arrays((rngs, args, kwargs))

  def init(arrays):
    r, a, kw = rebuild(arrays)
    with intercept_methods(record):
      return module.init(r, *a, method=method, mutable=mutable, **kw)

  jax.eval_shape(init, arrays)
  return found


def summarize(module: Any, rngs: Any, *args: Any, depth: int | None = None,
              show_repeated: bool = False, mutable: CollectionFilter = _NOT_INTERMEDIATES,
              compute_flops: bool = False, compute_vjp_flops: bool = False,
              **kwargs: Any) -> tuple[list[st.Row], dict[str, tuple[int, int]]]:
  """The table's content: its rows and ``{collection: (elements, bytes)}`` totals."""
  rngs = dict(rngs) if isinstance(rngs, Mapping) else {"params": rngs}
  method = kwargs.pop("method", None)
  calls: list[_Call] = []

  def record(next_fun, call_args, call_kwargs, context):
    mod = context.module
    name = context.method_name
    # Unbound modules, setup and private helpers (`_kernel_size`) are not calls a reader
    # asked for.
    if mod.scope is None or name == "setup" or (name.startswith("_")
                                                and not name.startswith("__")):
      return next_fun(*call_args, **call_kwargs)
    call = _Call(tuple(mod.scope.path), mod.clone(parent=None), context.method_name,
                 st.abstract(call_args), st.abstract(call_kwargs))
    calls.append(call)
    y = next_fun(*call_args, **call_kwargs)
    call.output = st.abstract(y)
    return y

  arrays, rebuild = st.split_arrays((rngs, args, kwargs))

  def init(arrays):
    r, a, kw = rebuild(arrays)
    with intercept_methods(record):
      return module.init(r, *a, method=method, mutable=mutable, **kw)

  variables = jax.eval_shape(init, arrays)
  flat = {col: flatten_dict(dict(tree)) if isinstance(tree, Mapping) else {(): tree}
          for col, tree in variables.items()}
  own, counts = st.attribute([c.path for c in calls], flat, depth)
  rows, seen_paths, seen_calls = [], set(), set()
  for call in calls:
    if depth is not None and len(call.path) > depth:
      continue
    if not show_repeated and (call.path, call.method) in seen_calls:
      continue
    seen_calls.add((call.path, call.method))
    first = call.path not in seen_paths
    seen_paths.add(call.path)
    name = type(call.module).__name__
    row = st.Row(call.path, name if call.method == "__call__" else f"{name}.{call.method}",
                 call.args, call.kwargs, call.output,
                 own[call.path] if first else {}, counts[call.path] if first else {})
    if compute_flops:
      row.flops = _flops(call, variables, rngs, vjp=False)
    if compute_vjp_flops:
      row.vjp_flops = _flops(call, variables, rngs, vjp=True)
    rows.append(row)
  cols = sorted(variables, key=lambda c: c != "params")  # params first, then init's order
  return rows, {col: st.size_and_bytes(variables[col]) for col in cols}


def _subtree(variables: Mapping[str, Any], path: tuple) -> dict:
  out = {}
  for col, tree in variables.items():
    for key in path:
      tree = tree.get(key) if isinstance(tree, Mapping) else None
    if tree is not None:
      out[col] = tree
  return out


def _flops(call: _Call, variables: Mapping[str, Any], rngs: dict, vjp: bool) -> float | None:
  """XLA's FLOPs of this call alone (None when it cannot run outside its parent)."""
  arrays, rebuild = st.split_arrays((call.args, call.kwargs))

  def forward(variables, rngs, arrays):
    args, kwargs = rebuild(arrays)
    y, _ = call.module.apply(variables, *args, rngs=rngs, method=call.method, mutable=True,
                             **kwargs)
    return y

  try:
    fn = st.with_backward(forward) if vjp else forward
    return st.flops_of(fn, _subtree(variables, call.path), rngs, arrays)
  except Exception:  # noqa: BLE001 - e.g. a call that needs its parent's context
    return None
