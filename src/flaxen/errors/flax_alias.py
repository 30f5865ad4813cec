"""Errors of the zero-edit mode (``flaxen.install_as_flax``, ``python -m flaxen run``)."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError

__all__ = ["FlaxModuleNotProvidedError", "RealFlaxImportedError"]


class FlaxModuleNotProvidedError(FlaxenError, ModuleNotFoundError):
  """A program imported a Flax module that flaxen has no counterpart for."""

  def __init__(self, flax_name: str, flaxen_name: str):
    super().__init__(
      f"flaxen has no module {flaxen_name!r}, so the Flax import {flax_name!r} cannot be "
      "served in zero-edit mode. Fix: see docs/porting.md for what flaxen provides and what "
      "to use instead, or run the program with the real Flax."
    )
    self.name = flax_name  # ModuleNotFoundError's attribute (FlaxenError takes a message only)


class RealFlaxImportedError(FlaxenError, ImportError):
  """``install_as_flax`` was called after the real Flax had been imported in this process."""

  def __init__(self, names: list[str]):
    shown = ", ".join(sorted(names)[:5]) + (" ..." if len(names) > 5 else "")
    super().__init__(
      f"The real Flax is already imported in this process ({shown}); modules that imported it "
      "keep references to it, so flaxen cannot take its place. Fix: call "
      "flaxen.install_as_flax() before anything imports flax (first cell of the notebook), or "
      "run the program with `python -m flaxen run prog.py`."
    )
