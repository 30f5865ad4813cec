"""``nnx.EMA``: an exponential moving average of a model's Variables.

The averages are Variables of the tracked ones' types (copies, with their metadata) held in
a State, so an EMA jits, splits and merges like a model. ``apply_to(model)`` returns a model
that holds the EMA's own Variables, so later ``update`` calls show in it.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> model = nnx.Linear(1, 1, rngs=nnx.Rngs(0))
>>> ema = nnx.EMA(model, decay=0.5)
>>> model.bias.value = jnp.array([2.0])
>>> ema.update(model)
>>> ema.params['bias'].value
Array([1.], dtype=float32)
"""

from __future__ import annotations

from typing import Any, TypeVar

import jax
import jax.numpy as jnp

from flaxen.errors.training import EMALeafError
from flaxen.nnx.graph_mode import resolve_graph
from flaxen.nnx.graphlib import merge, split
from flaxen.nnx.graphlib import state as graph_state
from flaxen.nnx.object import Object
from flaxen.nnx.state import merge_state
from flaxen.nnx.variables import Variable

__all__ = ["EMA"]

A = TypeVar("A")


def _is_inexact(path: tuple, x: Any) -> bool:
  """The default ``only``: Variables with float or complex values (not step counters,
  rng keys and counts)."""
  if not isinstance(x, Variable):
    return True  # reaches the Variable-only check, which names the path
  value = x.get_value()
  if isinstance(value, float | complex):
    return True
  dtype = getattr(value, "dtype", None)
  return dtype is not None and jnp.issubdtype(dtype, jnp.inexact)


def _copy(state: Any) -> Any:
  def copy(path: tuple, x: Any) -> Variable:
    if not isinstance(x, Variable):
      raise EMALeafError(tuple(getattr(k, "key", k) for k in path), type(x).__name__)
    return type(x)(jnp.copy(x.get_value()), **x.get_metadata())

  return jax.tree_util.tree_map_with_path(copy, state, is_leaf=lambda x: isinstance(x, Variable))


def _put(root: Any, path: tuple, var: Variable) -> None:
  node = root
  for key in path[:-1]:
    node = node._graph_get(key)
  node._graph_put(path[-1], var)


class EMA(Object):
  """Exponential moving average of the Variables of ``params`` selected by ``only``.

  Args:
    params: a model (any graph node or pytree of Variables) whose Variables to track.
    decay: weight of the old average: ``ema = decay * ema + (1 - decay) * new``.
    only: filter of the tracked Variables; by default those holding floats or complex
      numbers.
    graph: read ``params`` in graph mode (shared Variables allowed) or tree mode; ``None``
      follows ``nnx.set_graph_mode``.

  Attributes:
    decay: the decay.
    filter: the ``only`` filter.
    params: a State of the averages.

  Raises:
    EMALeafError: the filter selected a leaf that is not a Variable.
  """

  def __init__(self, params: Any, decay: float, *, only: Any = _is_inexact,
               graph: bool | None = None):
    self.graph = graph
    self.decay = decay
    self.filter = only
    self.params = _copy(graph_state(params, only, graph=resolve_graph(graph)))

  def update(self, updates: Any) -> None:
    """Moves every average towards the matching Variable of ``updates`` (a model shaped
    like the one given at construction, or its State)."""
    new = graph_state(updates, self.filter, graph=resolve_graph(self.graph))

    def step(ema: Variable, x: Any) -> None:
      value = x.get_value() if isinstance(x, Variable) else x
      ema.value = self.decay * ema.value + (1.0 - self.decay) * value

    jax.tree.map(step, self.params, new, is_leaf=lambda x: isinstance(x, Variable))

  def apply_to(self, model: A) -> A:
    """A new model shaped like ``model`` whose tracked Variables are this EMA's own (so
    they follow later updates); the other Variables are copies of ``model``'s."""
    graphdef, state = split(model, graph=resolve_graph(self.graph))
    out = merge(graphdef, merge_state(state, self.params), copy=True)
    for path, var in self.params.flat_state():
      _put(out, tuple(path), var)  # share, whether or not merge copied
    return out
