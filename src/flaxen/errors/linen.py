"""Errors of flaxen.linen: the Module lifecycle."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError, names, short_repr

__all__ = [
  "SetAttributeFrozenModuleError", "AssignSubModuleError", "CallCompactUnboundModuleError",
  "CallSetupUnboundModuleError", "MultipleMethodsCompactError", "ApplyModuleInvalidMethodError",
  "CallUnbindOnUnboundModuleError", "ReservedModuleAttributeError", "UnboundModuleError",
  "InitializationOutsideSetupError", "MergeParamError", "IncorrectPostInitOverrideError",
  "SetAttributeInModuleSetupError", "TransformedClosureError", "TransformTargetError",
  "TransformImmutableCollectionError", "TransformAxisSizeError", "DescriptorAttributeError",
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
    where = f" (it was created inside {parent}{'.' + method if method else ''})" if parent else ""
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
  """Flax once rejected several ``@nn.compact`` methods in one class; Flax 0.12 and flaxen
  accept them, and the class stays for programs that catch it."""

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
      "module itself. Fix: e.g. model.apply(variables, x, method='encode') or "
      "method=model.encode."
    )


class CallUnbindOnUnboundModuleError(FlaxenError, ValueError):
  """``unbind()`` was called on a module that is not bound."""

  def __init__(self, cls: str = ""):
    super().__init__(
      f"Can't call unbind() on the unbound module {cls}. Fix: call it on a module returned "
      "by bind(), or on a submodule inside a method run through apply()."
    )


class ReservedModuleAttributeError(FlaxenError, NameError):
  """A Module subclass declares a field whose name Module reserves.

  Args:
    annotations: the class's field annotations (or just the reserved names it declares).
    cls: the class name, for the message.
  """

  def __init__(self, annotations, cls: str = "Module"):
    reserved = [n for n in annotations if n in ("parent", "name", "scope")]
    super().__init__(
      f"{cls} declares the reserved attribute(s) {names(reserved)}: every Module has "
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


class TransformedClosureError(FlaxenError, ValueError):
  """A lifted transform's function used a bound Module it did not receive as an argument."""

  def __init__(self, what: str, transform: str):
    super().__init__(
      f"{what} was used inside nn.{transform}, but the module was closed over (e.g. by a "
      f"lambda) instead of passed in: its variables and rngs are invisible to the "
      f"transform. Fix: pass modules to the transformed function "
      "as arguments, wrapping a closure in a pytree such as\n"
      "  class Partial(flaxen.struct.PyTreeNode):\n"
      "    fn: Callable = flaxen.struct.field(pytree_node=False)\n"
      "    args: Iterable[Any]\n"
      "    def __call__(self, *args, **kwargs):\n"
      "      return self.fn(*(tuple(self.args) + args), **kwargs)\n"
      "and passing Partial(lambda mdl, x: mdl(x) + 1, [dense]) instead of the lambda."
    )


class TransformTargetError(FlaxenError, TypeError):
  """A lifted transform was applied to something that is neither a Module nor a function of
  a bound Module, or called without a bound Module.

  Args:
    target: what was found in place of the Module (class).
    transform: the transform's name, for the message.
  """

  def __init__(self, target: object, transform: str = "transform"):
    super().__init__(
      f"nn.{transform} needs a bound Module as the first argument of the transformed "
      f"function, got {short_repr(target)}. Fix: call it from inside a Module method "
      f"(setup or @nn.compact) as nn.{transform}(fn)(self, ...), or transform a Module "
      f"class: nn.{transform}(MyModule, ...)."
    )


class TransformImmutableCollectionError(FlaxenError, ValueError):
  """A transformed function wrote a collection that the transform keeps immutable."""

  def __init__(self, transform: str, col: str, why: str, cause: str):
    # ``transform`` as the user wrote it (``nn.scan``, ``flaxen.core.scan``)
    super().__init__(
      f"{transform} keeps collection {col!r} immutable inside the transformed function "
      f"({why}), but it was written: {cause} Fix: {_fix_for(transform.rpartition('.')[2], col)}"
    )


def _fix_for(transform: str, col: str) -> str:
  if transform in ("scan", "remat_scan"):
    return (f"give the collection a scan axis (variable_axes={{{col!r}: 0}}) or carry it "
            f"(variable_carry={col!r}); broadcast collections can only be created in init.")
  if transform in ("while_loop", "fori_loop"):
    return f"carry the collection through the loop (carry_variables={col!r})."
  return f"lift {col!r} as a mutable collection of the transform (its variables argument)."


class TransformAxisSizeError(FlaxenError, ValueError):
  """A lifted transform could not tell how many slices to split rngs or variables into."""

  def __init__(self, transform: str, what: str):
    super().__init__(
      f"nn.{transform} cannot infer the size of the mapped axis: {what}. Fix: pass "
      f"{'length' if transform == 'scan' else 'axis_size'}=N."
    )


class DescriptorAttributeError(FlaxenError, AttributeError):
  """A property (or other descriptor) of a Module raised ``AttributeError`` while it ran.

  Python would report that as the property itself missing; this names the property and
  keeps the real error as ``__cause__``.
  """

  def __init__(self, cls: str = "Module", attr: str = "", cause: object = None):
    inner = f" ({cause})" if cause is not None else ""
    super().__init__(
      f"The property {cls}.{attr} raised AttributeError{inner}: it reads an attribute that "
      "does not exist (or is not defined yet). Fix: define that attribute (as a field, or "
      "in setup()), or correct its name in the property."
    )
