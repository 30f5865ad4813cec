"""Module-level helpers of the Linen API: functional entry points, scope sharing, merging.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> class Affine(nn.Module):
...   @nn.compact
...   def __call__(self, x):
...     return x * self.param("a", jax.nn.initializers.ones, ())
...   def half(self, x):
...     return self(x) / 2
>>> variables = Affine().init(jax.random.key(0), 1.0)
>>> nn.apply(lambda m, x: m.half(x), Affine())(variables, 3.0).item()
1.5
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flaxen import errors
from flaxen.core.filters import CollectionFilter
from flaxen.linen.module import _NOT_INTERMEDIATES, Module

__all__ = ["apply", "init", "init_with_output", "share_scope"]

def share_scope(module: Module, other: Module) -> None:
  """Make ``module`` and ``other`` (bound modules) store their variables in one scope.

  If ``other`` lives inside ``module`` (a child), it moves into ``module``'s scope;
  otherwise (e.g. a module built by the parent and passed in) ``module`` moves into
  ``other``'s scope. Submodules adopted from the moved module's fields move along.
  """
  if module.scope is None:
    raise errors.CallShareScopeOnUnboundModuleError()
  if other.scope is None:
    raise errors.UnboundModuleError(type(other).__name__, "share_scope")
  if _within(other.scope, module.scope):
    moved, scope = other, module.scope
  else:
    moved, scope = module, other.scope
  object.__setattr__(moved, "scope", scope)
  d, names = moved.__dict__, moved._state.setup_names
  for f in moved._field_names:
    value = d.get(f)
    if isinstance(value, Module) and value.parent is moved:
      names.discard(value.name)
      object.__setattr__(moved, f, value.clone(parent=None))
  moved._adopt_fields()


def _within(scope: Any, ancestor: Any) -> bool:
  while scope is not None:
    if scope is ancestor:
      return True
    scope = scope.parent
  return False


def apply(fn: Callable[..., Any], module: Module, mutable: CollectionFilter = False,
          capture_intermediates: bool | Callable[[Module, str], bool] = False) -> Callable:
  """``fn(bound_module, *args)`` as ``(variables, *args, rngs=None) -> output``."""

  def wrapper(variables, *args, rngs=None, **kwargs):
    return module.apply(variables, *args, rngs=rngs, method=fn, mutable=mutable,
                        capture_intermediates=capture_intermediates, **kwargs)

  return wrapper


def init_with_output(fn: Callable[..., Any], module: Module,
                     mutable: CollectionFilter = _NOT_INTERMEDIATES,
                     capture_intermediates: bool | Callable[[Module, str], bool] = False
                     ) -> Callable:
  """``fn(bound_module, *args)`` as ``(rngs, *args) -> (output, variables)``."""

  def wrapper(rngs, *args, **kwargs):
    return module.init_with_output(rngs, *args, method=fn, mutable=mutable,
                                   capture_intermediates=capture_intermediates, **kwargs)

  return wrapper


def init(fn: Callable[..., Any], module: Module,
         mutable: CollectionFilter = _NOT_INTERMEDIATES,
         capture_intermediates: bool | Callable[[Module, str], bool] = False) -> Callable:
  """``fn(bound_module, *args)`` as ``(rngs, *args) -> variables``."""
  run = init_with_output(fn, module, mutable, capture_intermediates)
  return lambda rngs, *args, **kwargs: run(rngs, *args, **kwargs)[1]
