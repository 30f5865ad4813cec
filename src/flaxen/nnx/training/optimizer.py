"""``nnx.Optimizer``: an optax optimizer whose state is part of the graph.

The optimizer state's arrays live in ``OptArray`` Variables and the step count in an
``OptState`` Variable, so an optimizer splits, merges and jits like a model, and
``nnx.jit`` updates it in place.

>>> import jax.numpy as jnp
>>> import optax
>>> from flaxen import nnx
>>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
>>> opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
>>> grads = nnx.grad(lambda m: m(jnp.ones((1, 2))).sum())(model)
>>> opt.update(model, grads)
>>> int(opt.step.value), model.bias.value
(1, Array([-0.1], dtype=float32))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from flaxen.errors.nnx import OptimizerUpdateError
from flaxen.nnx.graphlib import state as graph_state
from flaxen.nnx.graphlib import update as graph_update
from flaxen.nnx.object import Object
from flaxen.nnx.state import State
from flaxen.nnx.variables import Param, Variable
from flaxen.training.grads import check_grads

__all__ = ["Optimizer", "ModelAndOptimizer", "OptState", "OptArray", "OptVariable"]


class OptState(Variable):
  """State of an optimizer (the step count, the optax state's arrays)."""


class OptArray(OptState):
  """An array of the optax state."""


class OptVariable(OptState):
  """An optax state leaf that came from a Variable."""


def _is_opt(x: Any) -> bool:
  return isinstance(x, OptState)


class Optimizer(Object):
  """Wraps an optax ``GradientTransformation`` over the ``wrt`` Variables of a model.

  Args:
    model: the model whose Variables are optimized.
    tx: the optax transformation.
    wrt: filter of the Variables to optimize (``nnx.Param`` by default).

  Attributes:
    step: an ``OptState`` counting the updates.
    opt_state: the optax state, its arrays wrapped in ``OptArray`` Variables.
    model: the model, which lets ``update(grads)`` (the older form) find it.
  """

  def __init__(self, model: Any, tx: optax.GradientTransformation, wrt: Any = Param):
    self.step = OptState(jnp.array(0, dtype=jnp.uint32))
    self.tx = tx
    self.wrt = wrt
    self.model = model
    wrt_state = graph_state(model, wrt)
    params = wrt_state.to_pure_dict()
    self.opt_state = _wrap_opt_state(tx.init(params), params, _metadata(wrt_state, params))

  def update(self, *args: Any, **kwargs: Any) -> None:
    """Applies one optimizer step: ``update(model, grads)`` (or ``update(grads)``).

    Extra keyword arguments go to the optax ``update`` (e.g. ``value`` for line searches).

    Raises:
      OptimizerUpdateError: called with neither form.
      OptimizerGradsError: the grads' paths or shapes differ from the model's wrt state.
    """
    if len(args) == 2:
      model, grads = args
    elif len(args) == 1:
      model, grads = self.model, args[0]
    else:
      raise OptimizerUpdateError(f"expected (model, grads) or (grads,), got {len(args)} "
                                 "positional arguments")
    if not isinstance(grads, State):
      raise OptimizerUpdateError(f"grads must be a State, got {type(grads).__name__}")
    params = graph_state(model, self.wrt).to_pure_dict()
    grads = State.filter(grads, self.wrt).to_pure_dict() if _has_variables(grads) else (
      grads.to_pure_dict())
    check_grads(params, grads, "Optimizer.update")
    opt_vars = jax.tree.leaves(self.opt_state, is_leaf=_is_opt)
    opt_state = jax.tree.map(lambda v: v.value, self.opt_state, is_leaf=_is_opt)
    updates, opt_state = self.tx.update(grads, opt_state, params, **kwargs)
    graph_update(model, State(optax.apply_updates(params, updates)))
    for var, value in zip(opt_vars, jax.tree.leaves(opt_state), strict=True):
      var.value = value
    self.step.value += 1


def _metadata(state: State, params: Any) -> list[dict[str, Any]]:
  """Each wrt Variable's metadata, in the leaf order of ``params`` (its pure dict)."""
  by_path = {tuple(path): v.get_metadata() for path, v in state.flat_state()}
  return [by_path[tuple(k.key for k in path)]
          for path, _ in jax.tree_util.tree_leaves_with_path(params)]


def _wrap_opt_state(opt_state: Any, params: Any, metadata: list[dict[str, Any]]) -> Any:
  """The optax state's arrays as OptArrays. Parts shaped like the params (Adam's moments)
  take each param's metadata, so they are sharded like the param they follow."""
  treedef = jax.tree.structure(params)
  shapes = [jnp.shape(x) for x in jax.tree.leaves(params)]

  def like_params(sub: Any) -> bool:
    return (jax.tree.structure(sub) == treedef
            and [jnp.shape(x) for x in jax.tree.leaves(sub)] == shapes)

  def wrap(sub: Any) -> Any:
    if like_params(sub):
      leaves = [OptArray(x, **m) for x, m in zip(jax.tree.leaves(sub), metadata, strict=True)]
      return jax.tree.unflatten(treedef, leaves)
    return OptArray(sub)

  return jax.tree.map(wrap, opt_state, is_leaf=like_params)


def _has_variables(state: State) -> bool:
  return any(isinstance(leaf, Variable) for _, leaf in state.flat_state())


# Newer Flax keeps the model in a separate ModelAndOptimizer; this Optimizer already does.
ModelAndOptimizer = Optimizer
