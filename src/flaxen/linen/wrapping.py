"""How Module methods run: the compact/nowrap markers, the method wrapper and interceptors.

Every user method of a Module class (``__call__`` and the other non-dunder functions in the
class body) is wrapped once, when the class is created. On a bound module the wrapper runs
``setup`` if it has not run yet, makes the module the default parent of submodules built
during the call, restarts ``ClassName_N`` naming at the start of a top-level compact call,
and records the output when intermediates are captured. On an unbound module it only
refuses compact methods.

>>> import flaxen.linen as nn
>>> class Double(nn.Module):
...   def __call__(self, x):
...     return 2 * x
>>> def log_calls(next_fun, args, kwargs, context):
...   print("calling", type(context.module).__name__, context.method_name)
...   return next_fun(*args, **kwargs)
>>> with nn.intercept_methods(log_calls):
...   Double().apply({}, 3)
calling Double __call__
6
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import jax

from flaxen import errors

__all__ = [
  "compact", "nowrap", "intercept_methods", "InterceptorContext", "enable_named_call",
  "disable_named_call", "override_named_call",
]

F = TypeVar("F", bound=Callable[..., Any])


def compact(fun: F) -> F:
  """Mark a method that may create submodules and params inline.

  Args:
    fun: the Module method.

  Returns:
    ``fun``, marked.
  """
  fun.compact = True  # type: ignore[attr-defined]
  return fun


def nowrap(fun: F) -> F:
  """Leave a method unwrapped: it runs without setup and is no entry point of its own.

  Args:
    fun: the Module method (e.g. a helper that builds submodules for its caller).

  Returns:
    ``fun``, marked.
  """
  fun.nowrap = True  # type: ignore[attr-defined]
  return fun


class _Context(threading.local):
  """Per thread: the modules whose methods are running (innermost last) and interceptors."""

  def __init__(self):
    self.stack: list[Any] = []
    self.interceptors: list[Callable[..., Any]] = []
    self.named_call = False


ctx = _Context()


class State:
  """Per-bound-module bookkeeping: setup progress and the names its children use."""

  __slots__ = ("setup_done", "in_setup", "compact_depth", "setup_names", "call_names", "cursor")

  def __init__(self):
    self.setup_done = False
    self.in_setup = False
    self.compact_depth = 0
    self.setup_names: set[str] = set()
    self.call_names: set[str] = set()
    self.cursor: dict[str, int] = {}


@dataclasses.dataclass(frozen=True)
class InterceptorContext:
  """What an interceptor is told about the intercepted call."""

  module: Any
  method_name: str
  orig_method: Callable[..., Any]


@contextlib.contextmanager
def intercept_methods(interceptor: Callable[..., Any]) -> Iterator[None]:
  """Route every Module method call (``setup`` too) through ``interceptor`` inside this
  context.

  ``interceptor(next_fun, args, kwargs, context)`` may inspect or change the arguments and
  the result; ``next_fun(*args, **kwargs)`` runs the next interceptor or the method itself
  (``context.orig_method`` is the method bound to the module, without interceptors).
  Interceptors nest: the outermost context runs first, the innermost wraps the method.
  """
  ctx.interceptors.append(interceptor)
  try:
    yield
  finally:
    ctx.interceptors.pop()


def enable_named_call() -> None:
  """Wrap every bound module call in ``jax.named_scope`` (its name), so profiles show it."""
  ctx.named_call = True


def disable_named_call() -> None:
  """Stop naming module calls (the default)."""
  ctx.named_call = False


@contextlib.contextmanager
def override_named_call(enable: bool = True) -> Iterator[None]:
  """Enable (or disable) named calls inside this context only."""
  previous = ctx.named_call
  ctx.named_call = enable
  try:
    yield
  finally:
    ctx.named_call = previous


def enter_frame(module: Any, compact: bool) -> None:
  """Make ``module`` the current parent of new submodules (running its setup first); in a
  compact frame it may also create variables and auto-named submodules."""
  state = module._state
  if not state.setup_done:
    module._run_setup()
  ctx.stack.append(module)
  if compact:
    if not state.compact_depth:  # a new top-level call: names start over
      state.cursor.clear()
      state.call_names.clear()
    state.compact_depth += 1


def exit_frame(module: Any, compact: bool) -> None:
  """Undo :func:`enter_frame`."""
  ctx.stack.pop()
  if compact:
    module._state.compact_depth -= 1


def wrap_method(fn: Callable, name: str) -> Callable:
  """The wrapper that every user method of a Module class gets (see module docstring)."""
  is_compact = getattr(fn, "compact", False)

  def run(self, *args, **kwargs):
    if self.scope is None:
      if is_compact:
        raise errors.CallCompactUnboundModuleError(type(self).__name__, name)
      return fn(self, *args, **kwargs)
    if self.scope.root.lifted is not None:
      what = f"{type(self).__name__}.{name} (the module at {self.scope.path_text!r})"
      raise errors.TransformedClosureError(what, self.scope.root.lifted)
    enter_frame(self, is_compact)
    try:
      if ctx.named_call:
        with jax.named_scope(self.name or type(self).__name__):
          y = fn(self, *args, **kwargs)
      else:
        y = fn(self, *args, **kwargs)
    finally:
      exit_frame(self, is_compact)
    capture = self.scope.root.flags.get("capture_intermediates")
    if capture and (name == "__call__" if capture is True else capture(self, name)):
      self.sow("intermediates", name, y)
    return y

  @functools.wraps(fn)
  def wrapped(self, *args, **kwargs):
    if ctx.interceptors:
      state = self._state
      if state is not None and not state.setup_done:  # setup is seen before the method
        self._run_setup()
      return _intercepted(run, self, fn, name, args, kwargs)
    return run(self, *args, **kwargs)

  wrapped._flaxen_wrapped = True  # type: ignore[attr-defined]
  return wrapped


def _intercepted(run, module, fn, name, args, kwargs):
  context = InterceptorContext(module, name, functools.partial(fn, module))
  interceptors = tuple(ctx.interceptors)

  # The first interceptor entered is the outermost; the last one wraps the method itself.
  def call(depth: int, *a, **kw):
    if depth == len(interceptors):
      return run(module, *a, **kw)
    return interceptors[depth](functools.partial(call, depth + 1), a, kw, context)

  return call(0, *args, **kwargs)


def run_setup(module: Any, setup: Callable[[Any], None]) -> None:
  """``setup(module)``, through the interceptors if there are any (as a method ``setup``)."""
  if ctx.interceptors:
    _intercepted(lambda m: setup(m), module, setup, "setup", (), {})
  else:
    setup(module)
