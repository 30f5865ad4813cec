"""Views: copies of a graph's Modules that share its Variables, with attributes changed.

``nnx.view(model, deterministic=True)`` asks each Module's ``set_view`` to take the
keyword arguments it knows (a Module without one sets the attributes it has);
``nnx.with_attributes`` sets attributes directly. The original model is left as it is and
the view holds the same Variable objects, so training one trains the other.

>>> from flaxen import nnx
>>> model = nnx.Sequential(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), nnx.Dropout(0.5))
>>> evaluation = nnx.with_attributes(model, deterministic=True)
>>> evaluation.layers[1].deterministic, model.layers[1].deterministic
(True, False)
>>> evaluation.layers[0].kernel is model.layers[0].kernel
True
"""

from __future__ import annotations

import inspect
from typing import Any

from flaxen.nnx import filterlib
from flaxen.nnx.graphlib import clone
from flaxen.nnx.module import Module, iter_modules

__all__ = ["view", "with_attributes", "view_info"]


def _modules(node: Any, only: Any, graph: bool | None) -> list[Module]:
  predicate = filterlib.to_predicate(... if only is None else only)
  return [m for path, m in iter_modules(node, graph=graph) if predicate(path, m)]


def with_attributes(node: Any, /, *, only: Any = None, raise_if_not_found: bool = True,
                    graph: bool | None = None, **attributes: Any) -> Any:
  """A copy of ``node`` sharing its Variables, with ``attributes`` set on every Module
  (matching ``only``) that has them.

  Raises:
    ValueError: some attribute is on no Module (unless ``raise_if_not_found=False``).
  """
  out = clone(node, variables=False, graph=graph)
  found = set()
  for module in _modules(out, only, graph):
    for name, value in attributes.items():
      if hasattr(module, name):
        setattr(module, name, value)
        found.add(name)
  missing = [n for n in attributes if n not in found]
  if missing and raise_if_not_found:
    raise ValueError(f"Could not find at least one instance of the following attributes: "
                     f"{missing} (in {type(node).__name__}). Fix: check the names, or pass "
                     "raise_if_not_found=False.")
  return out


def view(node: Any, /, *, only: Any = None, raise_if_not_found: bool = True,
         graph: bool | None = None, **kwargs: Any) -> Any:
  """A copy of ``node`` sharing its Variables, in which each Module (matching ``only``)
  was given ``kwargs`` through its ``set_view(**kwargs)`` (which returns the ones it did
  not use); Modules without ``set_view`` set the attributes they have.

  Raises:
    ValueError: no Module used some key (unless ``raise_if_not_found=False``).
  """
  out = clone(node, variables=False, graph=graph)
  used: set[str] = set()
  for module in _modules(out, only, graph):
    set_view = getattr(module, "set_view", None)
    if callable(set_view):
      unused = set_view(**kwargs) or {}
      used.update(k for k in kwargs if k not in unused)
    else:
      for name, value in kwargs.items():
        if name in module.__dict__:
          setattr(module, name, value)
          used.add(name)
  unused_keys = [k for k in kwargs if k not in used]
  if unused_keys and raise_if_not_found:
    raise ValueError(f"Unused keys found in nnx.view: {unused_keys}. No Module of "
                     f"{type(node).__name__} takes them. Fix: check the names, or pass "
                     "raise_if_not_found=False.")
  return out


def view_info(node: Any, /, *, only: Any = None, graph: bool | None = None) -> str:
  """The arguments that ``nnx.view`` can pass to the Modules of ``node``: for each class
  with a ``set_view``, its parameters and their descriptions (from the docstring's Args)."""
  blocks, seen = [], set()
  for module in _modules(node, only, graph):
    cls = type(module)
    set_view = getattr(cls, "set_view", None)
    if cls in seen or not callable(set_view):
      continue
    seen.add(cls)
    docs = _arg_docs(inspect.getdoc(set_view) or "")
    lines = [f"{cls.__qualname__}:"]
    for p in list(inspect.signature(set_view).parameters.values())[1:]:
      if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
        continue
      lines.append(f"  {p}")
      lines += [f"    {d}" for d in docs.get(p.name, [])]
    blocks.append("\n".join(lines))
  return "\n\n".join(blocks)


def _arg_docs(doc: str) -> dict[str, list[str]]:
  """``{name: description lines}`` from a Google-style ``Args:`` section."""
  out: dict[str, list[str]] = {}
  in_args, name, indent = False, None, None
  for line in doc.splitlines():
    stripped = line.strip()
    if not in_args:
      in_args = stripped == "Args:"
      continue
    if not stripped:
      continue
    depth = len(line) - len(line.lstrip())
    if indent is None:
      indent = depth
    if depth < indent:
      break
    if depth == indent and ":" in stripped:
      name, _, rest = stripped.partition(":")
      name = name.split(" ")[0].lstrip("*")
      out[name] = [rest.strip()] if rest.strip() else []
    elif name is not None:
      out[name].append(stripped)
  return out
