"""Errors of flaxen.linen: the Module lifecycle."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError, names, short_repr

__all__ = [
  "SetAttributeFrozenModuleError", "AssignSubModuleError", "CallCompactUnboundModuleError",
  "CallSetupUnboundModuleError", "MultipleMethodsCompactError", "ApplyModuleInvalidMethodError",
  "CallUnbindOnUnboundModuleError", "ReservedModuleAttributeError", "UnboundModuleError",
  "InitializationOutsideSetupError", "MergeParamError", "IncorrectPostInitOverrideError",
  "SetAttributeInModuleSetupError",
]


class SetAttributeFrozenModuleError(FlaxenError, AttributeError):
  """An attribute of a Module was assigned outside ``setup``."""

  def __init__(self, module_cls: str, attr_name: str, attr_val: object):
    super().__init__(
      f"Cannot set attribute {attr_name!r} = {short_repr(attr_val)} of Module {module_cls}: "
      "Modules are frozen after construction and only setup() may assign attributes. Fix: "
      f"use module.clone({attr_name}=...) to get a changed copy, or assign it in setup()."
    )


class AssignSubModuleError(FlaxenError, AttributeError):
  """A submodule was constructed inside a method that is neither setup nor @compact."""

  def __init__(self, cls: str, parent: str = "", method: str = ""):
    where = f" (inside {parent}.{method})" if parent else ""
    super().__init__(
      f"Submodule {cls} must be defined in setup() or in a method wrapped in @nn.compact"
      f"{where}. Fix: create it in setup() and assign it to an attribute, or decorate the "
      "method with @nn.compact."
    )


class CallCompactUnboundModuleError(FlaxenError, ValueError):
  """A @compact method was called on a module that is not bound to variables."""

  def __init__(self, cls: str = "", method: str = "__call__"):
    super().__init__(
      f"Can't call the compact method {cls}.{method} on an unbound module: it has no "
      f"variables. Fix: use model.init(rng, ...) / model.apply(variables, ..., "
      f"method={method!r}), or model.bind(variables).{method}(...)."
    )


class CallSetupUnboundModuleError(FlaxenError, AttributeError):
  """An attribute defined in ``setup`` was read on an unbound module."""

  def __init__(self, cls: str, attr: str):
    super().__init__(
      f"{cls} has no attribute {attr!r} yet: the module is unbound, so setup() has not run "
      "(top-level modules are never bound). Fix: bind it first, e.g. "
      f"model.bind(variables).{attr}, or use it inside a method run through apply()."
    )


class MultipleMethodsCompactError(FlaxenError, TypeError):
  """More than one method of a Module class is decorated with ``@nn.compact``."""

  def __init__(self, cls: str = "", methods=()):
    super().__init__(
      f"Only one method per Module class may be @nn.compact; {cls} has {names(methods)}. "
      "Fix: keep @nn.compact on one method and define the submodules the others need in "
      "setup() (or pass them in)."
    )


class ApplyModuleInvalidMethodError(FlaxenError, AttributeError):
  """``method=`` of init/apply names no method of the module."""

  def __init__(self, method: object, cls: str = ""):
    super().__init__(
      f"Cannot call {short_repr(method)} on {cls}: method= must be the name of a method of "
      "the module, a function taking the module as first argument, or a method of the "
      "module itself (e.g. model.encode)."
    )


class CallUnbindOnUnboundModuleError(FlaxenError, ValueError):
  """``unbind()`` was called on a module that is not bound."""

  def __init__(self, cls: str = ""):
    super().__init__(
      f"Can't call unbind() on the unbound module {cls}. Fix: call it on a module returned "
      "by bind(), or on a submodule inside a method run through apply()."
    )


class ReservedModuleAttributeError(FlaxenError, NameError):
  """A Module subclass declares a field whose name Module reserves."""

  def __init__(self, cls: str, attributes):
    super().__init__(
      f"{cls} declares the reserved attribute(s) {names(attributes)}: every Module has "
      "keyword-only 'parent' and 'name' fields. Fix: rename the field."
    )


class UnboundModuleError(FlaxenError, ValueError):
  """Variables, rngs or the path of a module were used while it is not bound."""

  def __init__(self, cls: str, what: str):
    super().__init__(
      f"Can't use {what} of the unbound module {cls}: unbound modules have no variables or "
      "rngs (top-level modules are never bound). Fix: call it through model.init / "
      "model.apply, or bind it first with model.bind(variables, rngs=...)."
    )


class InitializationOutsideSetupError(FlaxenError, ValueError):
  """A param or variable was created outside ``setup`` and outside a @compact method."""

  def __init__(self, cls: str, kind: str, name: str):
    super().__init__(
      f"{cls} tried to create the {kind} {name!r} outside setup() and outside a method "
      "wrapped in @nn.compact. Fix: declare it in setup(), or decorate the method with "
      "@nn.compact."
    )


class MergeParamError(FlaxenError, ValueError):
  """``nn.merge_param`` got a value from both places, or from neither."""

  def __init__(self, name: str, both: bool):
    state = "both the module attribute and the call argument" if both else "neither place"
    super().__init__(
      f"Parameter {name!r} was given in {state}. Fix: set it exactly once, either as a "
      "module attribute or as a call argument."
    )


class IncorrectPostInitOverrideError(FlaxenError, AttributeError):
  """A Module's ``__post_init__`` override does not call ``super().__post_init__()``."""

  def __init__(self, cls: str):
    super().__init__(
      f"{cls}.__post_init__ does not call super().__post_init__(), so the module can never "
      "be bound to its variables. Fix: end the override with super().__post_init__()."
    )


class SetAttributeInModuleSetupError(FlaxenError, AttributeError):
  """``setup`` assigned a construction attribute (a dataclass field)."""

  def __init__(self, cls: str, attr: str):
    super().__init__(
      f"{cls}.setup() assigns the construction attribute {attr!r}. Construction attributes "
      "define the module and must not change once it is built (clones rebuild from them). "
      f"Fix: store the derived value under another name, or pass {attr}=... when "
      "constructing the module."
    )
