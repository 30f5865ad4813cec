"""Zero-edit mode: ``import flax...`` anywhere in the process imports flaxen's module.

:func:`install_as_flax` puts a finder first on ``sys.meta_path`` that answers every import
of ``flax`` or ``flax.<path>`` with flaxen's module at the same path (``flax.linen`` is
``flaxen.linen``, the same module object), so a program or a library written for Flax runs
on flaxen unchanged, and a real Flax installed next to it is never loaded. A Flax module
that flaxen lacks raises :class:`~flaxen.errors.FlaxModuleNotProvidedError` (a
``ModuleNotFoundError``) naming it. ``python -m flaxen run prog.py`` installs it first.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

from flaxen import errors

__all__ = ["install_as_flax", "uninstall_flax_alias"]

_FLAX = "flax"


def _target(fullname: str) -> str:
  return "flaxen" + fullname[len(_FLAX):]


def _is_flax(fullname: str) -> bool:
  return fullname == _FLAX or fullname.startswith(_FLAX + ".")


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Finds ``flax.X`` as ``flaxen.X`` and loads it as that same, already imported module."""

  def find_spec(self, fullname, path=None, target=None):
    if not _is_flax(fullname):
      return None
    name = _target(fullname)
    try:
      found = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a missing parent package
      found = None
    if found is None:
      raise errors.FlaxModuleNotProvidedError(fullname, name)
    module = importlib.import_module(name)
    spec = importlib.machinery.ModuleSpec(
      fullname, self, is_package=hasattr(module, "__path__"))
    spec.loader_state = module
    return spec

  def create_module(self, spec) -> ModuleType:
    module = spec.loader_state
    # The import system will overwrite __spec__ with the alias's spec; keep flaxen's.
    spec.loader_state = (module, module.__spec__)
    return module

  def exec_module(self, module: ModuleType) -> None:
    spec = module.__spec__
    assert spec is not None  # the import system sets it before exec_module
    module.__spec__ = spec.loader_state[1]  # already executed as flaxen.X


_ALIAS = _Alias()


def install_as_flax() -> None:
  """Makes every later ``import flax...`` in this process import flaxen's module.

  Call it before anything imports Flax (the first cell of a notebook); calling it again
  does nothing. Modules already imported under ``flax`` names that are flaxen's are kept.

  Raises:
    RealFlaxImportedError: the real Flax was imported in this process already.

  >>> import flaxen, sys
  >>> flaxen.install_as_flax()
  >>> import flax.linen
  >>> flax.linen is flaxen.linen
  True
  >>> flaxen.uninstall_flax_alias()
  """
  real = [name for name, module in list(sys.modules.items())
          if _is_flax(name) and module is not None
          and not getattr(module, "__name__", "").startswith("flaxen")]
  if real:
    raise errors.RealFlaxImportedError(real)
  for name in [n for n, m in sys.modules.items() if _is_flax(n) and m is None]:
    del sys.modules[name]  # an import blocked with None would never reach the finder
  if _ALIAS not in sys.meta_path:
    sys.meta_path.insert(0, _ALIAS)


def uninstall_flax_alias() -> None:
  """Undoes :func:`install_as_flax`: removes the finder and the ``flax`` module names."""
  while _ALIAS in sys.meta_path:
    sys.meta_path.remove(_ALIAS)
  for name in [n for n in sys.modules if _is_flax(n)]:
    del sys.modules[name]
