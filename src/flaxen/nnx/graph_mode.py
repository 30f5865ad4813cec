"""NNX's two modes: graph mode (shared references, graph updates) and tree mode (pytrees).

The defaults are the config flags ``nnx_graph_mode`` / ``nnx_graph_updates`` (environment
``NNX_GRAPH_MODE`` / ``NNX_GRAPH_UPDATES``, or ``flaxen.config.update``); ``set_graph_mode``
and ``set_graph_updates`` override them for a call, a block or a function. Every function
and transform that takes ``graph=None`` / ``graph_updates=None`` resolves them here.

>>> from flaxen import nnx
>>> nnx.set_graph_mode.current_value()
True
>>> with nnx.set_graph_mode(False):
...   nnx.set_graph_mode.current_value()
False
"""

from __future__ import annotations

from flaxen.config_context import BaseConfigContext
from flaxen.configurations import config

__all__ = ["set_graph_mode", "set_graph_updates", "resolve_graph", "resolve_graph_updates"]


class set_graph_mode(BaseConfigContext):  # noqa: N801 (Flax's name)
  """Graph mode (True) or tree mode (False) for NNX functions and transforms."""

  @classmethod
  def get_default(cls) -> bool:
    return config.nnx_graph_mode


class set_graph_updates(BaseConfigContext):  # noqa: N801 (Flax's name)
  """Whether graph-mode transforms propagate structural changes back to their inputs."""

  @classmethod
  def get_default(cls) -> bool:
    return config.nnx_graph_updates


def resolve_graph(graph: bool | None) -> bool:
  """``graph`` if given, else the current mode."""
  return set_graph_mode.current_value() if graph is None else graph


def resolve_graph_updates(graph_updates: bool | None) -> bool:
  """``graph_updates`` if given, else the current setting."""
  return set_graph_updates.current_value() if graph_updates is None else graph_updates
