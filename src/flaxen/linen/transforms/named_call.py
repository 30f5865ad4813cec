"""``nn.named_call``: name a Module method's operations after the module in profiles.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> class Head(nn.Module):
...   @nn.named_call
...   def __call__(self, x):
...     return jnp.sin(x)
>>> jaxpr = jax.make_jaxpr(lambda x: Head(name="head").apply({}, x))(1.0)
>>> str(jaxpr.jaxpr.eqns[0].source_info.name_stack)
'head.__call__'
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax

from flaxen.linen.wrapping import ctx

__all__ = ["named_call"]

F = TypeVar("F", bound=Callable[..., Any])


def named_call(class_fn: F, force: bool = True) -> F:
  """Wrap a Module method so its operations run in ``jax.named_scope("{name}.{method}")``.

  Args:
    class_fn: the method (``fn(self, *args, **kwargs)``).
    force: name the call even when named calls are disabled (``nn.enable_named_call`` names
      every bound module call without this decorator).
  """

  @functools.wraps(class_fn)
  def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
    if not (force or ctx.named_call):
      return class_fn(self, *args, **kwargs)
    name = self.name or type(self).__name__
    with jax.named_scope(f"{name}.{class_fn.__name__}"):
      return class_fn(self, *args, **kwargs)

  return wrapped  # type: ignore[return-value]
