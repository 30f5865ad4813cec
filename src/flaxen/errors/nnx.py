"""Errors of flaxen.nnx."""

from __future__ import annotations

from collections.abc import Iterable

from flaxen.errors.base import FlaxenError, names, short_repr
from flaxen.errors.core import InvalidFilterError  # noqa: F401 (shared with Linen)

__all__ = [
  "UnmatchedFilterError", "MissingStateError", "StatePathError", "NoRngStreamError",
  "AttributeNotFoundError", "OptimizerUpdateError", "VariableMetadataError",
  "MissingKeyError", "UnmatchedStateAxesError", "TransformAxesError", "BroadcastStateUpdateError",
  "LoopStructureError", "CustomVjpError", "CustomVjpTangentError", "BridgeVariableError",
  "VariableNameConflictError", "TracerLeakError", "TraceContextError", "ImmutableVariableError",
  "VariableMetadataValueError", "NotAGraphDefError", "UnexpectedStateError",
  "StaticGraphNodeError", "ReseedShapeError",
]


def _path(path: tuple) -> str:
  return "/".join(str(k) for k in path) or "<root>"


class UnmatchedFilterError(FlaxenError, ValueError):
  """``nnx.split`` was given filters that leave a piece of state in no group."""

  def __init__(self, path: tuple, value: object, filters: Iterable[object]):
    self.path = path
    super().__init__(
      f"State at path {_path(path)!r} ({type(value).__name__}) matches none of the filters "
      f"{names(filters)} given to split. Every Variable must fall in one group. Fix: add a "
      "catch-all `...` as the last filter, or a filter that matches this Variable's type."
    )


class MissingStateError(FlaxenError, ValueError):
  """``nnx.merge`` was given states that lack a value the GraphDef needs."""

  def __init__(self, path: tuple):
    self.path = path
    super().__init__(
      f"No state was given for {_path(path)!r}, which the GraphDef expects. Fix: pass every "
      "State that nnx.split returned for this GraphDef to nnx.merge (e.g. "
      "`nnx.merge(graphdef, params, rest)`)."
    )


class StatePathError(FlaxenError, KeyError, ValueError):
  """A State path does not lead to an entry of the graph (or State) it is applied to."""

  def __init__(self, path: tuple, key: object, node: object):
    self.path = path
    super().__init__(
      f"Cannot apply state at {_path(path)!r}: {type(node).__name__} has no entry {key!r}. "
      "Fix: update a node with the structure the State was taken from."
    )

  def __str__(self) -> str:  # KeyError would repr() the message
    return str(self.args[0])


class NoRngStreamError(FlaxenError, AttributeError):
  """An Rngs object was asked for a stream it does not have, and has no 'default'."""

  def __init__(self, name: str, streams: Iterable[str]):
    super().__init__(
      f"Rngs has no stream {name!r} and no 'default' stream to fall back on (streams: "
      f"{names(streams)}). Fix: create it, e.g. `nnx.Rngs({name}=0)`, or give a default "
      "seed: `nnx.Rngs(0)`."
    )


class AttributeNotFoundError(FlaxenError, AttributeError):
  """``Module.set_attributes`` found no submodule with the requested attribute."""

  def __init__(self, attributes: Iterable[str], root: object):
    super().__init__(
      f"No submodule of {type(root).__name__} has the attribute(s) {names(attributes)}. "
      "Fix: check the spelling, or pass raise_if_not_found=False."
    )


class OptimizerUpdateError(FlaxenError, TypeError):
  """``Optimizer.update`` was called in a form it does not accept."""

  def __init__(self, detail: str):
    super().__init__(
      f"Optimizer.update: {detail}. Fix: call `optimizer.update(model, grads)` with the "
      "gradients that nnx.grad returned for the model."
    )


class VariableMetadataError(FlaxenError, AttributeError):
  """A Variable has no metadata field of the requested name."""

  def __init__(self, variable: object, name: str, fields: Iterable[str]):
    super().__init__(
      f"{type(variable).__name__} has no attribute or metadata {name!r} (metadata: "
      f"{names(fields)}; value: {short_repr(getattr(variable, 'raw_value', None))}). Fix: "
      "set it with `variable.set_metadata(name=...)` or pass it when creating the Variable."
    )


class MissingKeyError(FlaxenError, AttributeError):
  """Attribute access on a State or nnx.Dict named a key it does not have."""

  def __init__(self, container: str, name: str, keys: Iterable[object]):
    super().__init__(
      f"{container} has no key {name!r} (keys: {names(keys)}). Fix: check the spelling; "
      "list indices are ints, reachable with `state[0]`."
    )


class UnmatchedStateAxesError(FlaxenError, ValueError):
  """A Variable passed through ``nnx.vmap``/``nnx.scan`` matches no filter of its StateAxes."""

  def __init__(self, transform: str, path: tuple, variable: object, filters: Iterable[object]):
    self.path = path
    super().__init__(
      f"nnx.{transform}: {type(variable).__name__} at {_path(path)!r} matches none of the "
      f"StateAxes filters {names(filters)}. Every Variable of the argument needs an axis. "
      "Fix: add a catch-all entry, e.g. `nnx.StateAxes({..., ...: None})`."
    )


class TransformAxesError(FlaxenError, ValueError):
  """The ``in_axes``/``out_axes`` of a stateful transform do not fit its arguments."""

  def __init__(self, transform: str, detail: str, fix: str):
    super().__init__(f"nnx.{transform}: {detail}. Fix: {fix}.")


class BroadcastStateUpdateError(FlaxenError, ValueError):
  """A vectorized function gave a broadcast Variable (axis ``None``) a value that differs
  per mapped element."""

  def __init__(self, transform: str, path: tuple, variable: object):
    self.path = path
    super().__init__(
      f"nnx.{transform}: the function wrote {type(variable).__name__} at {_path(path)!r}, "
      "which is broadcast (axis None), with a value that differs per mapped element: one "
      "value cannot hold them all. Fix: map it (an int axis, e.g. "
      "`nnx.StateAxes({nnx.BatchStat: 0, ...: None})`), or write only values that do not "
      "depend on the mapped inputs."
    )


class LoopStructureError(FlaxenError, ValueError):
  """A loop body or branch changed the structure of the graph or value it carries."""

  def __init__(self, transform: str, detail: str):
    super().__init__(
      f"nnx.{transform}: {detail}. Every iteration (every branch) must return the same "
      "structure it was given: the same graph objects, with the same attributes and Variable "
      "types. Fix: create attributes and Variables before the loop, and return the carried "
      "graph objects themselves."
    )


class CustomVjpError(FlaxenError, ValueError):
  """``nnx.custom_vjp`` was set up or called in a way it does not support."""

  def __init__(self, name: str, detail: str, fix: str):
    super().__init__(f"nnx.custom_vjp({name}): {detail}. Fix: {fix}.")


class CustomVjpTangentError(FlaxenError, ValueError):
  """The ``bwd`` rule of ``nnx.custom_vjp`` returned cotangents that do not fit the arguments."""

  def __init__(self, name: str, argnum: int | None, detail: str):
    self.argnum = argnum
    which = "its cotangents" if argnum is None else f"the cotangent of argument {argnum}"
    super().__init__(
      f"nnx.custom_vjp({name}): the bwd rule returned {which} with the wrong structure: "
      f"{detail}. bwd returns a tuple with one cotangent per differentiable argument (int "
      "nondiff_argnums left out), shaped like the argument, with a State of the "
      "differentiated Variables in place of each graph object and an array (or None for zero) "
      "for each array. Fix: start from the argument's entry of `input_updates_g` (the first "
      "item of bwd's second argument), e.g. `m_g = jax.tree.map(lambda x: x, m_updates_g)`, "
      "and set its values."
    )


class BridgeVariableError(FlaxenError, KeyError, ValueError):
  """``bridge.ToLinen`` was applied to Linen variables that lack state its NNX module has."""

  def __init__(self, cls_name: str, collection: str, path: tuple):
    self.collection = collection
    self.path = path
    super().__init__(
      f"bridge.ToLinen({cls_name}): the NNX module has a Variable at {_path(path)!r} of "
      f"collection {collection!r}, but the Linen variables passed to apply have none. Fix: "
      f"pass every collection that init returned (including {collection!r}) to apply."
    )

  __str__ = Exception.__str__


class VariableNameConflictError(FlaxenError, ValueError):
  """A collection name or Variable type is already registered with a different partner."""

  def __init__(self, name: str, new: type, old: object):
    super().__init__(
      f"Collection name {name!r} cannot be registered for {new.__name__}: it is already "
      f"paired with {old!r}. Fix: pick another name, or pass overwrite=True."
    )


class TracerLeakError(FlaxenError, TypeError):
  """A traced function left a JAX tracer in a part of the graph that is not state."""

  def __init__(self, transform: str, argument: int, path: tuple, holder: object):
    self.path = path
    super().__init__(
      f"{transform}: after the traced function returned, {_path(path)!r} of graph argument "
      f"#{argument} (in a {type(holder).__name__}) holds a JAX tracer of that trace. It is "
      "not a Variable or array attribute, so its value cannot leave the trace and would fail "
      "on its next use. Fix: store the value in a Variable (e.g. "
      "`self.x = nnx.Variable(value)` or `nnx.Intermediate`), assign the array directly, or "
      "return it from the function."
    )


class TraceContextError(FlaxenError, ValueError):
  """A traced value was assigned to a Variable (or stored on a Module attribute) created
  outside the current trace."""

  def __init__(self, message: object, attribute: str | None = None):
    """``message`` is Flax's message text, or the Variable (or, with ``attribute``, the
    graph object) that was written, from which flaxen builds its message."""
    if isinstance(message, str):
      super().__init__(message)
      return
    variable = message
    if attribute is not None:  # an attribute of a graph object, not a Variable's value
      kind = type(variable).__name__
      super().__init__(
        f"Cannot store a JAX tracer on attribute {attribute!r} of this {kind}: the {kind} was "
        "created outside the transform being traced (it was closed over, not passed in), so "
        "the attribute would keep the tracer after the trace ends and fail on its next use "
        "(JAX's UnexpectedTracerError). Fix: pass the module to an nnx transform as an "
        "argument (e.g. `nnx.jit(lambda model, x: ...)(model, x)`), or return the value and "
        "assign it outside."
      )
      return
    value = getattr(variable, "raw_value", None)
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    what = short_repr(value) if shape is None else f"shape {tuple(shape)}, {dtype}"
    super().__init__(
      f"Cannot assign a JAX tracer to this {type(variable).__name__} ({what}): the Variable "
      "was created "
      "outside the transform being traced (it was closed over, not passed in), so it would "
      "keep the tracer after the trace ends. Fix: pass the module or Variable to the "
      "transform as an argument (e.g. `nnx.jit(lambda model, x: ...)(model, x)`), or return "
      "the new value and assign it outside."
    )


class ImmutableVariableError(FlaxenError, ValueError):
  """A Variable that is marked immutable was written.

  flaxen's NNX Variables have no immutable mode, so flaxen raises this only where a program
  raises it itself; the class is here so that Flax programs that catch it run unchanged.
  """

  def __init__(self, message: str):
    super().__init__(message if "Fix" in message else (
      f"{message} Fix: write a mutable copy of the Variable, or leave its value unchanged."))


class VariableMetadataValueError(FlaxenError, TypeError):
  """A Variable's metadata was given an array or a Variable."""

  def __init__(self, variable: object, key: str, value: object):
    self.key = key
    super().__init__(
      f"{type(variable).__name__} metadata {key!r} was given a {type(value).__name__} "
      f"({short_repr(value)}). Metadata is static: it is hashed into the GraphDef, where an "
      "array would compare by identity and never leave a transform as state. Fix: keep "
      "metadata to hashable Python values (ints, strings, tuples) and put arrays in the "
      "value, or in a Variable of their own."
    )


class NotAGraphDefError(FlaxenError, TypeError):
  """``nnx.merge`` was given something other than a GraphDef as its first argument."""

  def __init__(self, found: object):
    super().__init__(
      f"nnx.merge expects a GraphDef as its first argument, but got a {type(found).__name__} "
      f"({short_repr(found)}). Fix: pass the GraphDef that nnx.split returned, e.g. "
      "`graphdef, state = nnx.split(model); nnx.merge(graphdef, state)`."
    )


class UnexpectedStateError(FlaxenError, ValueError):
  """``nnx.merge`` was given a State entry that the GraphDef has no place for."""

  def __init__(self, path: tuple):
    self.path = path
    super().__init__(
      f"The state given to nnx.merge holds {_path(path)!r}, which the GraphDef does not "
      "have: it was split from a different structure. Fix: merge a State with the GraphDef "
      "split from the same module, or drop the extra entries (e.g. with `state.filter(...)`) "
      "or use `nnx.update(module, state)` to add them to an existing module."
    )


class StaticGraphNodeError(FlaxenError, ValueError):
  """A Module or Variable was passed in a position marked static for a stateful transform."""

  def __init__(self, transform: str, argument: int | str, node: object):
    super().__init__(
      f"nnx.{transform}: argument {argument!r} is marked static (static_argnums / "
      f"static_argnames) but holds a {type(node).__name__}, a graph node whose state must be "
      f"traced, not hashed. Fix: leave it out of static_argnums / static_argnames; "
      f"nnx.{transform} already treats a graph node's structure as static and its Variables "
      f"as traced state.")


class ReseedShapeError(FlaxenError, ValueError):
  """``nnx.reseed`` with ``policy='scalars_only'`` met a stream whose key was split."""

  def __init__(self, path: tuple, shape: tuple):
    super().__init__(
      f"nnx.reseed: the Rng stream at {_path(path)!r} has a key of shape {shape} (split by "
      "nnx.split_rngs or made under nnx.vmap), and policy='scalars_only' only puts a single "
      "key into a stream. Fix: pass policy='match_shape' to split the new key to that shape, "
      "or a function (path, key, shape) -> key.")
