"""Scoped overrides of a config flag: a call, a ``with`` block, or a decorator.

``BaseConfigContext`` subclasses (``nnx.set_graph_mode``, ``nnx.set_graph_updates``) keep a
per-thread stack of values over a default read from ``flaxen.config``:

- ``set_graph_mode(False)`` as a statement pushes the value for the rest of the thread;
- ``with set_graph_mode(False): ...`` pops it again at the end of the block;
- ``@set_graph_mode(False)`` on a function pushes it for each call only.

``current_value()`` is the top of the stack, or the default when the stack is empty.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, ClassVar


class BaseConfigContext:
  """A stack of values for one setting; subclasses define ``get_default``."""

  _local: ClassVar[threading.local]  # one per subclass, set in __init_subclass__

  def __init_subclass__(cls, **kwargs: Any) -> None:
    super().__init_subclass__(**kwargs)
    cls._local = threading.local()

  def __init__(self, value: Any, /) -> None:
    self.value = value
    type(self).get_stack().append(value)

  @classmethod
  def get_default(cls) -> Any:
    raise NotImplementedError(f"{cls.__name__} must define get_default()")

  @classmethod
  def get_stack(cls) -> list[Any]:
    stack = getattr(cls._local, "stack", None)
    if stack is None:
      stack = cls._local.stack = []
    return stack

  @classmethod
  def current_value(cls) -> Any:
    stack = cls.get_stack()
    return stack[-1] if stack else cls.get_default()

  def __enter__(self) -> BaseConfigContext:
    return self

  def __exit__(self, *exc: Any) -> None:
    type(self).get_stack().pop()

  def __call__(self, f: Callable) -> Callable:
    # As a decorator the value applies per call, not from decoration on: undo __init__'s push.
    cls, value = type(self), self.value
    cls.get_stack().pop()

    @functools.wraps(f)
    def scoped(*args: Any, **kwargs: Any) -> Any:
      cls.get_stack().append(value)
      try:
        return f(*args, **kwargs)
      finally:
        cls.get_stack().pop()

    return scoped

  def __repr__(self) -> str:
    return f"{type(self).__name__}({self.value!r})"
