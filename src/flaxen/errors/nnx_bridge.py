"""Errors of the Linen <-> NNX bridge's functional pieces (``bridge.functional``,
``bridge.Module``)."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError

__all__ = ["FunctionalNotInitializedError", "BridgeUnboundModuleError"]


class FunctionalNotInitializedError(FlaxenError, ValueError):
  """``Functional.apply`` ran before ``Functional.init`` made the module's GraphDef."""

  def __init__(self, name: str):
    super().__init__(
      f"bridge.functional({name}).apply was called before init, so there is no GraphDef to "
      "rebuild the module from. Fix: `state = f.init(rngs=nnx.Rngs(0))` first, then "
      "`f.apply(state)(x)`."
    )


class BridgeUnboundModuleError(FlaxenError, ValueError):
  """A ``bridge.Module`` made a param, variable or rng outside ``init`` / ``apply``."""

  def __init__(self, cls_name: str, what: str):
    super().__init__(
      f"{cls_name}: {what} needs a bound module, i.e. a call inside `init`/`apply` (in "
      "`setup` or a `@bridge.compact` method). Fix: run the module with "
      "`variables = model.init(0, x)` and `model.apply(variables, x)`."
    )
