"""NNX and Linen modules as submodules of a ``bridge.Module``.

Inside ``setup`` or a ``@bridge.compact`` method, ``nnx_in_bridge_mdl(factory)`` builds an
NNX module from the parent's ``Rngs`` (abstractly when ``apply`` got no rngs; its values then
come from the loaded variables) and ``linen_in_bridge_mdl(linen_module)`` wraps a Linen
module in a ``ToNNX``. In a compact method the result is named (``{Class}_{i}`` or ``name``)
and attached; in ``setup``, assign it yourself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flaxen.errors.nnx_bridge import BridgeUnboundModuleError
from flaxen.nnx.bridge.module import auto_name, current_context
from flaxen.nnx.bridge.to_nnx import ToNNX
from flaxen.nnx.rnglib import Rngs
from flaxen.nnx.transforms.eval_shape import eval_shape

__all__ = ["nnx_in_bridge_mdl", "linen_in_bridge_mdl"]


def _parent(what: str) -> Any:
  ctx = current_context()
  if ctx is None or ctx.module.scope is None:
    raise BridgeUnboundModuleError("bridge.Module", what)
  return ctx


def _attach(ctx: Any, module: Any, cls: type, name: str | None) -> Any:
  if ctx.in_compact:
    setattr(ctx.module, name or auto_name(ctx, cls), module)
  return module


def nnx_in_bridge_mdl(factory: Callable[[Rngs], Any], name: str | None = None) -> Any:
  """The NNX module ``factory(rngs)`` as a submodule of the running ``bridge.Module``.

  Raises:
    BridgeUnboundModuleError: called outside a bound ``bridge.Module``'s method.
  """
  ctx = _parent("nnx_in_bridge_mdl")
  parent = ctx.module
  rngs = parent.scope.rngs
  if parent.is_initializing() or list(rngs.streams()):
    module = factory(rngs)  # built for real: its rng state must be concrete
  else:  # no keys to draw: its shape only, the loaded variables fill it
    module = eval_shape(factory, Rngs(0))
  return _attach(ctx, module, type(module), name)


def linen_in_bridge_mdl(linen_module: Any, name: str | None = None) -> Any:
  """``ToNNX(linen_module)`` with the running ``bridge.Module``'s ``Rngs``, as a submodule.

  Raises:
    BridgeUnboundModuleError: called outside a bound ``bridge.Module``'s method.
  """
  ctx = _parent("linen_in_bridge_mdl")
  module = ToNNX(linen_module, ctx.module.scope.rngs)
  return _attach(ctx, module, type(linen_module), name)
