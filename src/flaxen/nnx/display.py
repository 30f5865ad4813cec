"""``nnx.display``: show graph objects readably.

In a notebook with `treescope <https://github.com/google-deepmind/treescope>`_ installed
(it is optional, not a dependency), each object is rendered as an interactive tree.
Everywhere else it is printed as indented text: Modules, States, Variables and GraphDefs
have reprs that show big arrays by shape and dtype only, never by value.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> nnx.display(nnx.Param(jnp.zeros((3, 4))))
Param(value=Array(shape=(3, 4), dtype=float32))
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["display"]


def display(*args: Any) -> None:
  """Show each argument: treescope in a notebook when installed, indented text otherwise."""
  treescope = _treescope()
  for x in args:
    if treescope is not None:
      treescope.display(x)
    else:
      print(repr(x))


def _treescope() -> Any:
  """The treescope module when it is installed and we run in an IPython kernel, else None."""
  try:
    ipython = importlib.import_module("IPython")
    treescope = importlib.import_module("treescope")
  except ImportError:
    return None
  shell = ipython.get_ipython()
  if shell is None or type(shell).__name__ != "ZMQInteractiveShell":  # not a notebook
    return None
  return treescope
