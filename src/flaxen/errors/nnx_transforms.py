"""Errors of NNX transforms in tree mode and in graph mode without graph updates."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError

__all__ = ["DuplicateVariableError", "VariableAliasingError", "PrefixFilterError",
           "InconsistentAliasingError", "GraphNodePrefixError", "BoundMethodError",
           "GraphUpdatesUnsupportedError"]


def _path(path: tuple) -> str:
  return "/".join(str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k))))
                  for k in path) or "<root>"


class DuplicateVariableError(FlaxenError, ValueError):
  """Tree mode met one Variable at two places: tree mode has no shared references."""

  def __init__(self, transform: str, variable: object, first: tuple, second: tuple):
    self.paths = (first, second)
    super().__init__(
      f"{transform}: Duplicate {type(variable).__name__} found at paths {_path(first)!r} and "
      f"{_path(second)!r}. Tree mode (graph=False) treats Modules as pytrees, where a "
      "Variable may appear once. Fix: pass each Variable once, or use graph mode "
      "(graph=True, or nnx.compat) to share references."
    )


class VariableAliasingError(FlaxenError, ValueError):
  """A transform without graph updates returned one of its input Variables."""

  def __init__(self, transform: str, variable: object, path: tuple):
    self.path = path
    super().__init__(
      f"{transform} does not support Variable aliasing between inputs and outputs: the "
      f"output at {_path(path)!r} is an input {type(variable).__name__}. Without graph "
      "updates only Variable values flow back to the inputs. Fix: return the value "
      "(`v[...]`), a copy (`nnx.clone(v)`), or use graph_updates=True."
    )


class PrefixFilterError(FlaxenError, ValueError):
  """A prefix filter (``DiffState``, ``StateSharding``) was given to a tree-mode transform."""

  def __init__(self, transform: str, argument: str, kind: str):
    super().__init__(
      f"{transform}: `{argument}` cannot contain `{kind}` objects without graph updates "
      "(tree mode has no prefix filters). Fix: split the state with `nnx.split(model, "
      "filter, ...)` and pass the groups as separate arguments, or use "
      "graph=True, graph_updates=True (nnx.compat)."
    )


class InconsistentAliasingError(FlaxenError, ValueError):
  """One Variable reached a transform through two arguments with different specs."""

  def __init__(self, transform: str, variable: object, first: object, second: object):
    super().__init__(
      f"{transform}: Inconsistent aliasing: the same {type(variable).__name__} is passed "
      f"with the spec {first!r} in one place and {second!r} in another. Fix: give every "
      "path to a shared Variable the same spec, or pass it once."
    )


class GraphNodePrefixError(FlaxenError, ValueError):
  """A Module or Variable was given where a transform expects a prefix of specs."""

  def __init__(self, transform: str, argument: str, node: object):
    super().__init__(
      f"{transform}: Graph nodes are not allowed as prefixes: `{argument}` holds a "
      f"{type(node).__name__}. Fix: give a spec (sharding, axis, None) per argument, or "
      "an nnx.StateSharding / nnx.StateAxes for the state of a graph argument."
    )


class BoundMethodError(FlaxenError, ValueError):
  """A transform was given a bound method of a Module (or other graph object)."""

  def __init__(self, transform: str, method: object):
    owner = type(getattr(method, "__self__", None)).__name__
    name = getattr(method, "__name__", "method")
    super().__init__(
      f"{transform} does not take bound methods of graph objects: got {owner}.{name}. Its "
      "object would be captured by the function instead of passed to the transform, so its "
      f"state would not be traced or updated. Fix: transform the function and pass the "
      f"object: `{transform}(lambda m, *args: m.{name}(*args))(obj, ...)`, or decorate the "
      "method in the class body."
    )


class GraphUpdatesUnsupportedError(FlaxenError, ValueError):
  """A transform that only exists without graph updates was asked for them."""

  def __init__(self, transform: str):
    super().__init__(
      f"{transform} does not support graph_updates=True. Fix: pass graph_updates=False "
      "(only Variable values are tracked), or nnx.set_graph_updates(False)."
    )
