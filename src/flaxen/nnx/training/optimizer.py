"""``nnx.Optimizer``: an optax optimizer whose state is part of the graph.

The optimizer state's arrays live in ``OptState`` Variables (``OptVariable`` where optax made
the leaf from a model Variable, keeping that Variable's metadata, so Adam's moments are
sharded like their params; ``OptArray`` for the rest) and the step count in an ``OptState``,
so an optimizer splits, merges and jits like a model, and ``nnx.jit`` updates it in place.
As in Flax 0.12 the optimizer does not hold the model (``ModelAndOptimizer`` does): pass the
model to ``update``.

>>> import jax.numpy as jnp
>>> import optax
>>> from flaxen import nnx
>>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
>>> opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
>>> grads = nnx.grad(lambda m: m(jnp.ones((1, 2))).sum())(model)
>>> _ = opt.update(model, grads)
>>> int(opt.step.value), model.bias.value
(1, Array([-0.1], dtype=float32))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flaxen.errors.nnx import OptimizerUpdateError
from flaxen.errors.training import OptimizerModelError
from flaxen.nnx.graph_mode import resolve_graph
from flaxen.nnx.graphlib import state as graph_state
from flaxen.nnx.graphlib import update as graph_update
from flaxen.nnx.object import Object, is_graph_node
from flaxen.nnx.spmd import sharding_names
from flaxen.nnx.state import State
from flaxen.nnx.variables import Param, Variable
from flaxen.training.grads import check_grads

__all__ = ["Optimizer", "ModelAndOptimizer", "OptState", "OptArray", "OptVariable",
           "to_opt_state", "MISSING"]


class OptState(Variable):
  """State of an optimizer (the step count, the optax state's arrays)."""


class OptArray(OptState):
  """An optax state leaf that was a plain array."""


class OptVariable(OptState):
  """An optax state leaf that optax made from a Variable (it keeps the Variable's metadata)."""


class _Missing:
  def __repr__(self) -> str:
    return "MISSING"


MISSING = _Missing()  # the default that tells "not passed" from any value


def _is_var(x: Any) -> bool:
  return isinstance(x, Variable)


def _opt_metadata(var: Variable) -> dict[str, Any]:
  meta = dict(var.get_metadata())
  if "optimizer_sharding" in meta:  # a sharding meant for the optimizer state wins
    meta = {k: v for k, v in meta.items() if k not in ("sharding_names", "sharding")}
    meta["out_sharding"] = meta.pop("optimizer_sharding")
  names = sharding_names(meta)
  if names is not None and len(names) != np.ndim(var.get_value()):
    # optax made a leaf of another rank (L-BFGS's history): the param's axis names do not fit
    meta = {k: v for k, v in meta.items() if k not in ("sharding_names", "sharding",
                                                        "out_sharding")}
  return meta


def to_opt_state(tree: Any) -> Any:
  """Wraps an optax state's leaves: Variables become ``OptVariable`` (same metadata),
  anything else ``OptArray``.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> s = nnx.training.optimizer.to_opt_state({'a': nnx.Param(jnp.ones(2)), 'b': jnp.zeros(())})
  >>> type(s['a']).__name__, type(s['b']).__name__
  ('OptVariable', 'OptArray')
  """
  def wrap(x: Any) -> OptState:
    if isinstance(x, Variable):
      return OptVariable(x.get_value(), **_opt_metadata(x))
    return OptArray(x)

  return jax.tree.map(wrap, tree, is_leaf=_is_var)


def _pure(tree: Any) -> Any:
  """``tree`` with each Variable replaced by its value (States stay States)."""
  return jax.tree.map(lambda x: x.get_value() if isinstance(x, Variable) else x, tree,
                      is_leaf=_is_var)


def _has_variables(state: State) -> bool:
  return any(isinstance(leaf, Variable) for _, leaf in state.flat_state())


class Optimizer(Object):
  """Wraps an optax ``GradientTransformation`` over the ``wrt`` Variables of a model.

  Args:
    model: the model whose Variables are optimized (not kept: pass it to ``update``).
    tx: the optax transformation.
    wrt: filter of the Variables to optimize; match the filter given to ``nnx.grad``.
      ``nnx.Param`` when left out (Flax 0.12 requires it).
    graph: read the model's state in graph mode (shared Variables allowed) or tree mode;
      ``None`` follows ``nnx.set_graph_mode``.

  Attributes:
    step: an ``OptState`` counting the updates.
    tx: the optax transformation.
    opt_state: the optax state, its leaves wrapped by :func:`to_opt_state`.
    wrt: the filter.
  """

  def __init__(self, model: Any, tx: optax.GradientTransformation, *, wrt: Any = Param,
               graph: bool | None = None):
    self.step = OptState(jnp.array(0, dtype=jnp.uint32))
    self.tx = tx
    self.wrt = wrt
    self._graph = resolve_graph(graph)
    self.opt_state = to_opt_state(tx.init(graph_state(model, wrt, graph=self._graph)))

  def __getattr__(self, name: str) -> Any:
    # only reached when normal lookup failed
    if name == "model":
      raise OptimizerModelError(type(self).__name__)
    raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

  def update(self, model: Any = MISSING, grads: Any = MISSING, /, **kwargs: Any) -> Any:
    """Applies one optimizer step to ``model`` in place and returns the optax updates.

    Extra keyword arguments go to the optax ``update`` (e.g. ``value``, ``grad`` and
    ``value_fn`` for line searches); Variables in them are passed as their values.

    Raises:
      OptimizerUpdateError: ``model`` or ``grads`` missing, or grads not a State.
      OptimizerGradsError: the grads' paths or shapes differ from the model's wrt state.
    """
    if grads is MISSING:
      raise OptimizerUpdateError(
        "both (model, grads) are required since Flax 0.11 (got one argument); "
        "nnx.ModelAndOptimizer keeps the model and takes update(grads)")
    return self._step(model, grads, kwargs)

  def _step(self, model: Any, grads: Any, kwargs: dict[str, Any]) -> Any:
    if is_graph_node(grads):  # tree-mode nnx.grad returns the model's own type, as in Flax
      grads = graph_state(grads, self.wrt, graph=self._graph)
    if not isinstance(grads, State):
      raise OptimizerUpdateError(f"grads must be a State, got {type(grads).__name__}")
    params = _pure(graph_state(model, self.wrt, graph=self._graph))
    if _has_variables(grads):
      grads = State.filter(grads, self.wrt)
    grads = _pure(grads)
    check_grads(params, grads, "Optimizer.update")
    opt_vars = jax.tree.leaves(self.opt_state, is_leaf=_is_var)
    updates, new_opt_state = self.tx.update(grads, _pure(self.opt_state), params,
                                            **_pure(kwargs))
    graph_update(model, optax.apply_updates(params, updates))
    for var, value in zip(opt_vars, jax.tree.leaves(new_opt_state), strict=True):
      var.value = value
    self.step.value += 1
    return updates


class ModelAndOptimizer(Optimizer):
  """An :class:`Optimizer` that keeps its model, so ``update`` takes only the grads
  (Flax's form before 0.11; deprecated there, kept for older programs).

  Args:
    model: the model, kept as ``self.model``.
    tx: the optax transformation.
    wrt: filter of the Variables to optimize (``nnx.Param``).
    graph: as for :class:`Optimizer`.
  """

  def __init__(self, model: Any, tx: optax.GradientTransformation, *, wrt: Any = Param,
               graph: bool | None = None):
    super().__init__(model, tx, wrt=wrt, graph=graph)
    self.model = model

  def update(self, grads: Any = MISSING, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
    """Applies one step to ``self.model``: ``update(grads)`` (``update(model, grads)``
    works too)."""
    if args:  # the Optimizer form, model first
      if len(args) != 1:
        raise OptimizerUpdateError(f"expected (grads,) or (model, grads), got {1 + len(args)} "
                                   "positional arguments")
      return self._step(grads, args[0], kwargs)
    if grads is MISSING:
      raise OptimizerUpdateError("expected update(grads), got no arguments")
    return self._step(self.model, grads, kwargs)
