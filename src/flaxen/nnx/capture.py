"""``nnx.capture``: run a Module (or one of its methods) and collect what it sowed.

``nnx.capture(model, nnx.Intermediate)(x)`` returns ``(output, intermediates)``: the
Variables of the given types that the call created (``sow``, ``perturb``), popped from the
model so it is left as it was. ``init`` puts a State in first (the perturbations a
previous capture returned, to take gradients with respect to them);
``method_outputs=nnx.Intermediate`` also sows the output of every method called on a
Module of the graph, under the method's name.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> class Foo(nnx.Module):
...   def __call__(self, x):
...     self.sow(nnx.Intermediate, 'half', x / 2)
...     return x + 1
>>> y, intms = nnx.capture(Foo(), nnx.Intermediate)(jnp.ones(2))
>>> intms['half'][0]
Array([0.5, 0.5], dtype=float32)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax

from flaxen.nnx import filterlib
from flaxen.nnx.containers import List
from flaxen.nnx.graphlib import iter_graph, pop, update
from flaxen.nnx.module import CAPTURE_BOXES, Module, iter_modules
from flaxen.nnx.state import State
from flaxen.nnx.variables import Variable

__all__ = ["capture"]


def capture(fn: Callable, *var_types: Any, init: Any = None,
            method_outputs: Any = None) -> Callable:
  """Wraps ``fn`` (a Module, a bound method of one, or a function taking Modules) to
  return ``(output, state)``.

  Args:
    fn: the Module to call, a bound method of a Module, or a function whose arguments hold
      the Module(s) to collect from (several: the State is indexed by their order).
    *var_types: the Variable types (filters) to collect; the state is one State for one
      type, a tuple of States for several (an empty State for none).
    init: a State put into the Module before the call (and taken out after).
    method_outputs: a Variable type: every method called on a Module of the graph sows
      its output under the method's name.
  """
  bound = fn if isinstance(fn, Module) else getattr(fn, "__self__", None)

  @functools.wraps(fn)
  def wrapper(*args: Any, **kwargs: Any) -> Any:
    module = bound if isinstance(bound, Module) else _modules_in((args, kwargs), fn)
    types = [t for t in (*var_types, *(_types(init) if init is not None else ()))
             if isinstance(t, type) and issubclass(t, Variable)]
    boxes = _open_boxes(module, list(dict.fromkeys(types)))
    given: set = set()
    if init is not None:
      given = {path for path, _ in init.flat_state()}
      rest = _fill_boxes(boxes, init)
      if rest:
        update(module, State.from_flat_path(rest))
    undo = _sow_method_outputs(module, method_outputs) if method_outputs else []
    try:
      out = fn(*args, **kwargs)
    finally:
      for cls, name, original in undo:
        if original is None:
          delattr(cls, name)
        else:
          setattr(cls, name, original)
      sown = _close_boxes(boxes)
    states = pop(module, *var_types) if var_types else State({})
    if init is not None:  # take out what init added; it was given, not made by the call
      extra = [t for t in _types(init) if t not in var_types]
      if extra:
        pop(module, *extra)
    states = _with_sown(states, var_types, sown)
    if given:
      states = (tuple(_without(s, given) for s in states) if isinstance(states, tuple)
                else _without(states, given))
    return out, states

  return wrapper


def _open_boxes(module: Any, types: list[type]) -> list[tuple[tuple, Any, type, Any]]:
  """Puts an empty capture box of each type on every Module of the graph (containers
  excepted: they never sow); returns ``(path, module, type, box it replaced)``."""
  boxes = []
  if not types:
    return boxes
  modules = [(path, m) for path, m in iter_graph(module, graph=True)
             if isinstance(m, Module) and not isinstance(m, list | dict)]
  for t in types:
    name = CAPTURE_BOXES.setdefault(t, f"_nnx_captured_{t.__name__}")
    for path, m in modules:
      boxes.append((path, m, t, m.__dict__.get(name)))  # a capture around this one
      setattr(m, name, t({}))
  return boxes


def _fill_boxes(boxes: list, init: State) -> list:
  """Puts init's values into the boxes of their Modules; returns the entries that have
  none (written with ``update``, as new attributes)."""
  where = {(path, t): m.__dict__[CAPTURE_BOXES[t]] for path, m, t, _ in boxes}
  rest = []
  for path, leaf in init.flat_state():
    box = where.get((path[:-1], type(leaf)))
    if box is None:
      rest.append((path, leaf))
    else:
      box.value = {**box.value, path[-1]: leaf.value}
  return rest


def _close_boxes(boxes: list) -> list[tuple[tuple, Any]]:
  """Takes the boxes off (putting back any they replaced); returns what was sown into
  them as ``(path, Variable)`` pairs."""
  sown = []
  for path, m, t, before in boxes:
    name = CAPTURE_BOXES[t]
    box = m.__dict__.get(name)
    if before is None:
      if name in m.__dict__:
        delattr(m, name)
    else:
      setattr(m, name, before)
    if isinstance(box, Variable):
      for key, value in box.value.items():
        sown.append(((*path, key), t(value)))
  return sown


def _with_sown(states: Any, var_types: tuple, sown: list) -> Any:
  """``pop``'s result with the boxes' entries added, each under the first filter it
  matches (as ``pop`` sorts them)."""
  if not sown:
    return states
  single = not isinstance(states, tuple)
  groups = [list(s.flat_state()) for s in ((states,) if single else states)]
  preds = [filterlib.to_predicate(f) for f in var_types]
  for path, var in sown:
    for group, pred in zip(groups, preds, strict=False):
      if pred(path, var):
        group.append((path, var))
        break
  out = tuple(State.from_flat_path(g) for g in groups)
  return out[0] if single else out


def _modules_in(tree: Any, fn: Any) -> Any:
  """The Module (or a list of the Modules) among a plain function's arguments."""
  found = [x for x in jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, Module))
           if isinstance(x, Module)]
  if not found:
    raise TypeError(f"nnx.capture: {fn!r} is not a Module or a bound method of one, and "
                    "none of its arguments is a Module. Fix: capture a Module's call, or pass "
                    "the Module as an argument.")
  return found[0] if len(found) == 1 else List(found)


def _without(state: State, paths: set) -> State:
  """``state`` less the entries at ``paths`` (a Perturbation is an Intermediate, so
  collecting Intermediates would hand init's own perturbations back as if sown)."""
  flat = state.flat_state()
  if not any(path in paths for path, _ in flat):
    return state
  return State.from_flat_path([(p, v) for p, v in flat if p not in paths])


def _types(state: Any) -> list[type]:
  seen: list[type] = []
  for _, leaf in state.flat_state():
    if type(leaf) not in seen:
      seen.append(type(leaf))
  return seen


def _sow_method_outputs(module: Module, var_type: Any) -> list[tuple[type, str, Any]]:
  """Patches the methods of the graph's Module classes so that a call on one of its
  Modules sows its output; returns what to restore."""
  members = {id(m) for _, m in iter_modules(module)}
  classes = {type(m) for _, m in iter_modules(module)}
  undo = []
  for cls in classes:
    for name, original in inspect.getmembers(cls, inspect.isfunction):
      if ((name.startswith("_") and name != "__call__") or getattr(Module, name, None) is
          original or getattr(original, "_nnx_sowing", False)):
        continue
      undo.append((cls, name, cls.__dict__.get(name)))
      setattr(cls, name, _sowing(original, name, var_type, members))
  return undo


def _sowing(method: Callable, name: str, var_type: Any, members: set[int]) -> Callable:
  @functools.wraps(method)
  def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
    out = method(self, *args, **kwargs)
    if id(self) in members:
      self.sow(var_type, name, out)
    return out
  wrapped._nnx_sowing = True  # a base class patched first is not wrapped twice
  return wrapped
