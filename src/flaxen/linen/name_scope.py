"""``nn.compact_name_scope``: a method whose submodules live under the method's name.

Haiku names a module's parameters after the method that creates them; this decorator gives
Linen methods the same layout. The decorated method runs inside a hidden compact child of
the module, named after the method (created once per bound module, after ``setup``), so
the submodules it builds are named ``<method>/ClassName_N``. ``self`` in the method is still
the module itself.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> class Foo(nn.Module):
...   @nn.compact_name_scope
...   def up(self, x):
...     return nn.Dense(3)(x)
...   @nn.compact_name_scope
...   def down(self, x):
...     return nn.Dense(3)(x)
...   def __call__(self, x):
...     return self.up(x) + self.down(x)
>>> params = Foo().init(jax.random.key(0), jnp.ones((1, 2)))["params"]
>>> sorted(params), sorted(params["up"])
(['down', 'up'], ['Dense_0'])
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flaxen import errors
from flaxen.linen.module import Module
from flaxen.linen.wrapping import compact

__all__ = ["compact_name_scope"]

F = TypeVar("F", bound=Callable[..., Any])


class _NameScope(Module):
  """The compact child that runs ``fn(owner, ...)``: submodules built there are its own."""

  fn: Callable[..., Any]
  owner: Callable[[], Module]

  @compact
  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    return self.fn(self.owner(), *args, **kwargs)


def compact_name_scope(fun: F) -> F:
  """Run a Module method in a name scope of its own (named after the method).

  The method may be called from ``setup``-style or compact methods, other
  ``compact_name_scope`` methods, or directly through ``apply(..., method="name")``.

  Args:
    fun: the Module method.

  Returns:
    The wrapped method.
  """
  name = fun.__name__

  @functools.wraps(fun)
  def in_name_scope(self: Module, *args: Any, **kwargs: Any) -> Any:
    if self.scope is None:
      raise errors.CallCompactUnboundModuleError(type(self).__name__, name)
    if not self._state.setup_done:
      self._run_setup()
    scopes = self.__dict__.setdefault("_name_scopes", {})
    child = scopes.get(name)
    if child is None:
      if name in self._state.call_names:  # a compact submodule of that name came first
        raise errors.NameInUseError("name scope", name, type(self).__name__)
      child = scopes[name] = _NameScope(fun, lambda: self, parent=None)
      child._bind_as(self, name, in_setup=True)  # reserves the name among the submodules
    return child(*args, **kwargs)

  in_name_scope.nowrap = True  # type: ignore[attr-defined]  # the child's call is the frame
  in_name_scope.compact_name_scope = True  # type: ignore[attr-defined]
  in_name_scope.inner_fun = fun  # type: ignore[attr-defined]
  return in_name_scope  # type: ignore[return-value]
