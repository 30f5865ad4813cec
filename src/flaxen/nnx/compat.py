"""``nnx.compat``: the graph-mode API, whatever the configured default mode.

Each name here is the ``flaxen.nnx`` function of the same name with ``graph=True`` (and
``graph_updates=True`` for transforms) as its default, so code written for graph mode keeps
its meaning when the process runs in tree mode.

>>> from flaxen import nnx
>>> model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
>>> with nnx.set_graph_mode(False):
...   graphdef, params = nnx.compat.split(model)  # graph mode all the same
>>> params['kernel'].value.shape
(2, 3)
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

_NAMES = (
  "split", "state", "graphdef", "clone", "iter_graph", "iter_children", "iter_modules",
  "recursive_map", "view", "view_info", "flatten", "split_rngs", "fork_rngs", "backup_keys",
  "reseed", "get_abstract_model",
  "jit", "grad", "value_and_grad", "vjp", "jvp", "custom_vjp", "vmap", "pmap", "scan", "remat",
  "cond", "switch", "fori_loop", "while_loop", "eval_shape", "shard_map", "checkify",
  "cached_partial",
)
__all__ = list(_NAMES)  # defined lazily, by __getattr__

# Names whose nnx function also takes ``graph_updates`` (the transforms).
_TRANSFORMS = frozenset(_NAMES[_NAMES.index("jit"):]) | {"split_rngs", "fork_rngs"}


def _graph_default(fn: Any, updates: bool) -> Any:
  """``fn`` with ``graph=True`` (and ``graph_updates=True``) as defaults; a parameter that
  ``fn`` does not take is accepted at its graph-mode value and not passed on."""
  sig = inspect.signature(fn)
  takes = {name for name, p in sig.parameters.items() if p.kind is not p.VAR_KEYWORD}
  varkw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
  names = ("graph", "graph_updates") if updates else ("graph",)

  @functools.wraps(fn)
  def wrapper(*args: Any, **kwargs: Any) -> Any:
    for name in names:
      value = kwargs.pop(name, True)
      if name in takes or varkw:
        kwargs[name] = value
      elif value is not True:
        raise TypeError(f"{fn.__name__}() has no {name!r} parameter in flaxen yet; "
                        f"it runs in graph mode only")
    return fn(*args, **kwargs)

  params = [p for p in sig.parameters.values() if p.name not in names]
  extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=True) for n in names]
  at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
  wrapper.__signature__ = sig.replace(parameters=params[:at] + extra + params[at:])
  del wrapper.__wrapped__  # inspect.signature reads __signature__, not fn's defaults
  return wrapper


def __getattr__(name: str) -> Any:
  # Resolved on first use so that compat always wraps the current nnx function.
  if name not in _NAMES:
    raise AttributeError(f"module 'flaxen.nnx.compat' has no attribute {name!r}")
  nnx = importlib.import_module("flaxen.nnx")
  fn = getattr(nnx, name)
  wrapped = _graph_default(fn, name in _TRANSFORMS)
  globals()[name] = wrapped
  return wrapped


def __dir__() -> list[str]:
  return sorted(_NAMES)
