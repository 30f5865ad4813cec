"""Linen collection names <-> NNX Variable types: the registry ``nnx.register_variable_name``
fills and the Linen bridge reads (it needs no Linen, so it lives beside the Variables).

The built-in pairs are ``'params'`` <-> ``Param``, ``'batch_stats'`` <-> ``BatchStat``,
``'cache'`` <-> ``Cache``, ``'intermediates'`` <-> ``Intermediate`` and ``'perturbations'``
<-> ``Perturbation``. Any other collection name gets a generated ``Variable`` subclass of
that name (registered on first use), and an unregistered Variable type gets its class name
as its collection.

>>> from flaxen import nnx
>>> nnx.variable_type_from_name("batch_stats") is nnx.BatchStat
True
>>> @nnx.register_variable_name("counts")
... class Count(nnx.Variable):
...   pass
>>> nnx.variable_name_from_type(Count)
'counts'
"""

from __future__ import annotations

from typing import Any

from flaxen.errors.nnx import VariableNameConflictError
from flaxen.nnx.variables import BatchStat, Cache, Intermediate, Param, Perturbation, Variable

__all__ = [
  "register_variable_name", "register_variable_name_type_pair", "variable_type_from_name",
  "variable_name_from_type",
]

_NAME_TO_TYPE: dict[str, type[Variable]] = {
  "params": Param, "batch_stats": BatchStat, "cache": Cache, "intermediates": Intermediate,
  "perturbations": Perturbation,
}
_TYPE_TO_NAME: dict[type[Variable], str] = {t: n for n, t in _NAME_TO_TYPE.items()}


def register_variable_name(name: str, typ: type[Variable] | None = None, *,
                           overwrite: bool = False) -> Any:
  """Pairs collection ``name`` with Variable type ``typ`` (both directions).

  Without ``typ``, a class decorator: ``@register_variable_name('counts')``.

  Raises:
    VariableNameConflictError: ``name`` is paired with another type and not ``overwrite``.
  """
  if typ is None:
    def decorator(cls: type[Variable]) -> type[Variable]:
      register_variable_name(name, cls, overwrite=overwrite)
      return cls
    return decorator
  old = _NAME_TO_TYPE.get(name)
  if old is not None and old is not typ and not overwrite:
    raise VariableNameConflictError(name, typ, old)
  _NAME_TO_TYPE[name] = typ
  _TYPE_TO_NAME[typ] = name
  return typ


def register_variable_name_type_pair(name: str, typ: type[Variable],
                                     overwrite: bool = False) -> None:
  """The older spelling of ``register_variable_name(name, typ)``."""
  register_variable_name(name, typ, overwrite=overwrite)


def variable_type_from_name(name: str, *, base: type[Variable] | None = None,
                            allow_register: bool = False) -> type[Variable]:
  """The Variable type of Linen collection ``name``; an unknown name gets a new subclass of
  ``base`` (``Variable``) named after it, registered when ``allow_register``."""
  typ = _NAME_TO_TYPE.get(name)
  if typ is None:
    typ = type(name, (base or Variable,), {"__module__": __name__})
    if allow_register:
      register_variable_name(name, typ)
  return typ


def variable_name_from_type(typ: type[Variable], *, allow_register: bool = False) -> str:
  """The Linen collection of Variable type ``typ``; an unregistered type's collection is its
  class name (registered when ``allow_register``)."""
  name = _TYPE_TO_NAME.get(typ)
  if name is None:
    name = typ.__name__
    if allow_register and name not in _NAME_TO_TYPE:
      register_variable_name(name, typ)
  return name
