"""Errors of flaxen.core: the variable store, rng streams and scope naming."""

from __future__ import annotations

from collections.abc import Mapping

from flaxen.errors.base import FlaxenError, names, short_repr

__all__ = [
  "ScopeParamNotFoundError", "ScopeParamShapeError", "ScopeVariableNotFoundError",
  "ScopeCollectionNotFound", "ModifyScopeVariableError", "InvalidRngError", "NameInUseError",
  "InvalidFilterError", "InvalidScopeError", "ApplyScopeInvalidVariablesStructureError",
  "ApplyScopeInvalidVariablesTypeError", "FrozenDictError", "LiftScopeError",
]


def _where(path: str) -> str:
  return path or "/"


def _auto_name_hint(path: str) -> str:
  """Extra advice when the last path component looks like a generated ``ClassName_N``."""
  last = path.rsplit("/", 1)[-1]
  stem, _, index = last.rpartition("_")
  if not (stem and index.isdigit()):
    return ""
  return (
    f" {last!r} looks like an automatically generated name: submodules created inline in an "
    "@nn.compact method are named ClassName_N in creation order, so control flow that "
    "creates different submodules on different calls gives them the same name. Fix it by "
    "(1) giving each submodule an explicit name=..., (2) creating the submodules in "
    "setup(), or (3) moving their construction out of the control flow."
  )


class ScopeParamNotFoundError(FlaxenError, KeyError):
  """A param was read during ``apply`` but the given variables do not hold it."""

  def __init__(self, param_name: str, scope_path: str):
    super().__init__(
      f'No parameter named "{param_name}" exists in "{_where(scope_path)}" (collection '
      "'params'). Fix: pass the variables returned by init() for this same model, or make "
      "'params' mutable and give a 'params' rng to create it."
    )

  __str__ = Exception.__str__  # KeyError would quote the whole message


class ScopeParamShapeError(FlaxenError, ValueError):
  """A stored param's shape differs from the shape its initializer would produce."""

  def __init__(self, param_name: str, scope_path: str, value_shape, init_shape):
    super().__init__(
      f'Initializer expected to generate shape {init_shape} but got shape {value_shape} '
      f'instead for parameter "{param_name}" in "{_where(scope_path)}" (collection '
      "'params'). The stored variables were created for a different configuration (or by "
      "a different submodule with the same name)." + (_auto_name_hint(scope_path) or (
        " Fix: apply the variables that init() returned for a module built with the same "
        "attributes and input shapes, or re-initialize them."))
    )


class ScopeVariableNotFoundError(FlaxenError, KeyError):
  """A variable was read that does not exist, and its collection cannot create it."""

  def __init__(self, name: str, col: str, scope_path: str):
    super().__init__(
      f'No variable named "{name}" in collection "{col}" exists in "{_where(scope_path)}". '
      f"Fix: pass a '{col}' collection that holds it (e.g. from init()), or make '{col}' "
      "mutable and give an init_fn so that it is created."
    )

  __str__ = Exception.__str__


class ScopeCollectionNotFound(FlaxenError, KeyError):
  """A variable was read from a collection that the given variables do not have at all."""

  def __init__(self, col_name: str, var_name: str, scope_path: str):
    super().__init__(
      f'Tried to read variable "{var_name}" from collection "{col_name}" in '
      f'"{_where(scope_path)}", but the variables have no collection "{col_name}". '
      f"Fix: pass it to apply (variables={{..., '{col_name}': ...}}), or make it mutable "
      f"(mutable=['{col_name}']) so that it is initialized."
    )

  __str__ = Exception.__str__


class ModifyScopeVariableError(FlaxenError, ValueError):
  """A variable was written (or created) in a collection that is not mutable."""

  def __init__(self, col: str, variable_name: str, scope_path: str):
    self.col = col  # read by lifted transforms to explain why the collection is immutable
    super().__init__(
      f'Cannot update variable "{variable_name}" in "{_where(scope_path)}" because '
      f'collection "{col}" is immutable. Fix: pass mutable=["{col}"] (or mutable=True) to '
      f"apply, which then returns (output, updated_collections)."
    )


class InvalidRngError(FlaxenError, TypeError):
  """An rng stream is missing, or a value given as an rng is not a PRNG key."""

  def __init__(self, msg: str):
    super().__init__(msg)

  @classmethod
  def missing(cls, stream: str, scope_path: str, available) -> InvalidRngError:
    return cls(
      f'"{_where(scope_path)}" needs a PRNG key for stream "{stream}", but only the streams '
      f"{names(available)} were given. Fix: pass rngs={{'{stream}': jax.random.key(0)}} to "
      "init/apply."
    )

  @classmethod
  def not_a_key(cls, stream: str, value) -> InvalidRngError:
    return cls(
      f'The rng for stream "{stream}" must be a PRNG key (jax.random.key(n) or '
      f"jax.random.PRNGKey(n)), got {short_repr(value)}. Fix: pass "
      f"rngs={{'{stream}': jax.random.key(0)}}, not a seed or an array of ints."
    )


class NameInUseError(FlaxenError, ValueError):
  """Two submodules (or a submodule and a variable) of one module have the same name."""

  def __init__(self, key_type: str, value: str, module_name: str, why: str = ""):
    super().__init__(
      f'Could not create {key_type} "{value}" in module {module_name}: the name is already '
      f"in use{why}. Fix: give one of them a different (explicit) name."
    )


class InvalidFilterError(FlaxenError, TypeError):
  """A value that is not a filter was used as one.

  Linen's collection filters (``mutable=``, lifted transforms' collections) and NNX's
  Variable filters (``nnx.split``, ``nnx.state``, transforms) share this class.
  """

  def __init__(self, filter_like, collections: bool = False):
    if collections:
      expected = ("a collection filter: True, False, a collection name, a list/tuple/set of "
                  "names, or a DenyList. Fix: e.g. mutable=['batch_stats']")
    else:
      expected = ("a Variable filter: a Variable type, a tag string, `...`/True, None/False, a "
                  "tuple (any of) or list (all of) of filters, or a callable (path, value) -> "
                  "bool. Fix: e.g. `nnx.Param` or `nnx.PathContains('kernel')`")
    super().__init__(
      f"Invalid filter {short_repr(filter_like)} ({type(filter_like).__name__}): expected "
      f"{expected}."
    )


class InvalidScopeError(FlaxenError, RuntimeError):
  """A scope (or a module bound to it) was used after its apply call returned."""

  def __init__(self, scope_name: str, trace_ended: bool = False):
    if trace_ended:
      super().__init__(
        f'The scope "{_where(scope_name)}" was bound inside a JAX transform (jax.jit, '
        "jax.vmap, jax.grad, ...) that has returned: its variables are tracers of that "
        "trace, which cannot be used after it (JAX would raise UnexpectedTracerError). Fix: "
        "use the bound module inside the transformed function and return plain arrays, or "
        "bind it outside the transform (module.bind(variables))."
      )
      return
    super().__init__(
      f'The scope "{_where(scope_name)}" is no longer valid: bound modules only live during '
      "the init/apply call that created them. Fix: do the work inside a module method "
      "and pass it as method= to apply, or use module.bind(variables) for interactive use."
    )


class ApplyScopeInvalidVariablesStructureError(FlaxenError, TypeError):
  """``variables`` is not shaped ``{collection: {module path...: {variable: array}}}``.

  Args:
    variables: the variables given to init/apply.
    col: the collection whose entry is not a dict; None when the params were wrapped twice
      (``{"params": {"params": ...}}``).
  """

  def __init__(self, variables, col: str | None = None):
    if col is None:
      super().__init__(
        "The variables passed to apply hold an extra 'params' layer: "
        "{'params': {'params': ...}}. Fix: pass variables['params'] instead, i.e. the dict "
        "that init() returned."
      )
      return
    value = variables.get(col) if isinstance(variables, Mapping) else variables
    hint = (
      " It looks like the params were passed directly: wrap them as {'params': params}."
      if hasattr(value, "shape") or col not in ("params", "batch_stats", "intermediates")
      else ""
    )
    super().__init__(
      "init/apply expect variables shaped {collection: {module path...: {variable: array}}}, "
      f"but entry {col!r} holds a {type(value).__name__}, not a dict.{hint} Fix: pass "
      "what init() returned, e.g. model.apply(variables, x)."
    )


class ApplyScopeInvalidVariablesTypeError(FlaxenError, TypeError):
  """``variables`` given to init/apply/bind is not a dict at all."""

  def __init__(self, value):
    super().__init__(
      "The variables passed to apply/bind must be a dict {collection: {...}} (e.g. what "
      f"init() returned), got a {type(value).__name__}: {short_repr(value)}. Fix: pass "
      "model.init(rng, x) (or {'params': params}) as the first argument."
    )


class FrozenDictError(FlaxenError, ValueError):
  """An item of a ``FrozenDict`` was assigned: FrozenDicts are immutable."""

  def __init__(self, key):
    super().__init__(
      f"Cannot assign key {short_repr(key)} of a FrozenDict: FrozenDicts are immutable. Fix: "
      f"make an updated copy, `fd = fd.copy({{{short_repr(key)}: value}})`, or get a plain "
      "dict with flaxen.core.unfreeze(fd)."
    )


class LiftScopeError(FlaxenError, TypeError):
  """A core lifted transform (``flaxen.core.vmap``, ...) got no Scope to lift."""

  def __init__(self, transform: str, found: object):
    super().__init__(
      f"core.{transform} lifts a scope function fn(scope, *args): its first argument must "
      f"be a Scope or a pytree of Scopes, got {short_repr(found)}. Fix: call the lifted "
      f"function from inside a scope function, e.g. core.{transform}(fn, ...)(scope, x) in "
      f"a function run by core.init / core.apply."
    )
