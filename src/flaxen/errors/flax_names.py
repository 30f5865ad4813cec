"""Errors that Flax names in ``flax.errors``, with Flax's constructor parameters.

Each is still a :class:`~flaxen.errors.FlaxenError` whose message says what happened,
where, and how to fix it.
"""

from __future__ import annotations

from flaxen.errors.base import FlaxenError, short_repr

__all__ = [
  "LazyInitError", "InvalidInstanceModuleError", "TransformedMethodReturnValueError",
  "CallShareScopeOnUnboundModuleError", "JaxTransformError",
]


class LazyInitError(FlaxenError, ValueError):
  """``lazy_init`` produced a variable that depends on the values of an abstract input.

  ``partial_val`` is the partially known value that could not be computed.
  """

  def __init__(self, partial_val: object):
    self.partial_val = partial_val
    super().__init__(
      f"lazy_init could not compute a variable ({short_repr(partial_val)}): it depends on "
      "the values of an input given only as jax.ShapeDtypeStruct. Fix: pass a concrete "
      "array for that input (init instead of lazy_init), or make the initializer depend on "
      "the input's shape only."
    )


class InvalidInstanceModuleError(FlaxenError, TypeError):
  """``init`` / ``apply`` / ``bind`` was called on a Module class instead of an instance."""

  def __init__(self, method: str = "init", cls_name: str = "Module"):
    super().__init__(
      f"{cls_name}.{method}(...) was called on the Module class, not on an instance. "
      f"Fix: build the module first, e.g. {cls_name}(...).{method}(...)."
    )


class TransformedMethodReturnValueError(FlaxenError, TypeError):
  """A method under a Linen transform returned a Module or a Variable.

  Modules and Variables inside a transform are bound to scopes that end with it.
  """

  def __init__(self, name: str):
    super().__init__(
      f"The transformed method {name} returned a Module or Variable, which is bound to the "
      "transform's inner scope and unusable outside it. Fix: return arrays (e.g. "
      "variable.value, or the module's output) and build or call the module outside."
    )


class CallShareScopeOnUnboundModuleError(FlaxenError, ValueError):
  """``nn.share_scope`` was called with a module that is not bound (has no scope yet)."""

  def __init__(self):
    super().__init__(
      "nn.share_scope was called on an unbound module. Fix: call it inside setup() or an "
      "@nn.compact method of a module that is being initialized or applied."
    )


class JaxTransformError(FlaxenError, ValueError):
  """A scope or module bound in one JAX trace was used inside another (a raw ``jax.jit`` /
  ``jax.vmap`` around a bound module's method)."""

  def __init__(self):
    super().__init__(
      "A bound scope was used inside a JAX transform (jax.jit, jax.vmap, ...) other than the "
      "one it was bound in. Fix: use the lifted Linen transform (nn.jit, nn.vmap, ...), which "
      "carries the module's variables and rngs through the transform."
    )
