"""Seed 002's functional path: States, Variables and Modules at a user's own ``jax.jit``.

Models (a) and (b) of ``bench_nnx.py``. The pytree rows time ``jax.tree.flatten`` /
``unflatten`` of (b) with its optimizer (1,402 arrays) against the same arrays in plain
nested dicts (``nnx.to_pure_dict``), the least a pytree of those arrays costs: a State made
by ``nnx.state`` (its Variables read and written by Python, one call each, so that
``is_leaf`` predicates still see them), an unread State (one that came out of an unflatten,
as a State does from ``jax.jit``: flattening it returns what it was built from) and a
tree-mode Module with its Optimizer. CPU time of this process. Two floor rows wrap each
of the same arrays in the cheapest node a Python class can be (one attribute, built by
``object.__new__``; and the same class through JAX's own C++ ``register_dataclass`` path):
what any design pays that keeps one Python object per Variable in the pytree, as Flax's
``is_leaf`` predicates and ``.value`` key paths need.

The step rows are the functional API of seed 002: ``nnx.split`` once outside,
``jax.jit`` over a function that merges, steps and returns ``nnx.state(...)``, against the
plain-JAX step of ``bench_nnx.py``; beside each, the same step with the state crossing
``jax.jit`` as plain dicts (the figure the State's pytree cost is measured against).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import optax

from benchmarks.bench_nnx import MLP, Blocks, nnx_step, reference_setup
from benchmarks.timing import Result, compare
from flaxen import nnx

CPU = dict(repeats=21, min_sample_s=0.02, clock=time.process_time)


def _flat_unflat(tree):
  leaves, treedef = jax.tree.flatten(tree)
  return (lambda: jax.tree.flatten(tree)), (lambda: jax.tree.unflatten(treedef, leaves))


class _Box:
  """The least a Python-registered pytree node can be: one slot, no metadata."""
  __slots__ = ("value",)


def _box(value: Any) -> _Box:
  box = object.__new__(_Box)
  box.value = value
  return box


jax.tree_util.register_pytree_node(_Box, lambda b: ((b.value,), None),
                                   lambda _, children: _box(children[0]))


@dataclasses.dataclass
class _DataBox:
  value: Any


jax.tree_util.register_dataclass(_DataBox, data_fields=["value"], meta_fields=[])


def floor_rows(pure: dict, pure_flat, pure_unflat) -> list[Result]:
  """A Python object per array, at least: the floor under the State and Module rows."""
  rows = []
  for label, wrap in (("custom node", _box),
                      ("register_dataclass", _DataBox)):
    flat, unflat = _flat_unflat(jax.tree.map(wrap, pure))
    note = "floor: the plain dicts with each array in a minimal Python node"
    rows += [compare(f"pytree floor: flatten, {label} per array", flat, pure_flat,
                     notes=note, **CPU),
             compare(f"pytree floor: unflatten, {label} per array", unflat, pure_unflat,
                     notes=note, **CPU)]
  return rows


def pytree_rows() -> list[Result]:
  model = Blocks(nnx.Rngs(0))
  state = nnx.state((model, nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)))
  unread = jax.tree.map(lambda x: x, state)
  tree_model = Blocks(nnx.Rngs(0))
  module = (tree_model, nnx.Optimizer(tree_model, optax.adam(1e-3), wrt=nnx.Param,
                                      graph=False))
  pure = nnx.to_pure_dict(state)
  pure_flat, pure_unflat = _flat_unflat(pure)
  state_flat, state_unflat = _flat_unflat(state)
  unread_flat, _ = _flat_unflat(unread)
  module_flat, module_unflat = _flat_unflat(module)
  note = "vs the same arrays in plain dicts; issue 18 target 2x"
  return [
    compare("pytree (b): flatten State", state_flat, pure_flat, target=2.0, notes=note, **CPU),
    compare("pytree (b): unflatten State", state_unflat, pure_unflat, target=2.0, notes=note,
            **CPU),
    compare("pytree (b): flatten unread State", unread_flat, pure_flat, target=2.0,
            notes=note, **CPU),
    compare("pytree (b): flatten tree-mode Module + Optimizer", module_flat, pure_flat,
            target=2.0, notes=note, **CPU),
    compare("pytree (b): unflatten tree-mode Module + Optimizer", module_unflat, pure_unflat,
            target=2.0, notes=note, **CPU),
    *floor_rows(pure, pure_flat, pure_unflat),
  ]


def step_rows(label: str, model_cls, tx, with_stats: bool, target: float) -> list[Result]:
  x, y, ref_call = reference_setup(model_cls, tx, with_stats)

  model = model_cls(nnx.Rngs(0))
  graphdef, state = nnx.split((model, nnx.Optimizer(model, tx, wrt=nnx.Param)))

  @jax.jit
  def step(state, x, y):  # seed 002's functional form
    model, optimizer = nnx.merge(graphdef, state)
    loss = nnx_step(model, optimizer, x, y)
    return loss, nnx.state((model, optimizer))

  @jax.jit
  def pure_step(pure, x, y):  # the same, the state crossing jax.jit as plain dicts
    local = jax.tree.map(lambda v: v, state)  # a State of the same shape to fill
    local.replace_by_pure_dict(pure)
    model, optimizer = nnx.merge(graphdef, local)
    loss = nnx_step(model, optimizer, x, y)
    return loss, nnx.state((model, optimizer)).to_pure_dict()

  held = {"state": state, "pure": nnx.to_pure_dict(state)}

  def call():
    loss, held["state"] = step(held["state"], x, y)
    return loss

  def pure_call():
    loss, held["pure"] = pure_step(held["pure"], x, y)
    return loss

  return [
    compare(f"step: {label}, functional split/merge + jax.jit", call, ref_call,
            target=target, unit="per step", notes=f"seed 002; issue 18 target {target}x"),
    compare(f"step: {label}, the same with plain-dict state", pure_call, ref_call,
            unit="per step", notes="reference: the State's pytree cost left out"),
  ]


def run() -> list[Result]:
  return [
    *pytree_rows(),
    *step_rows("(a) MLP 16-32-32-4, SGD", MLP, optax.sgd(0.1), False, target=1.1),
    *step_rows("(b) 100x(Linear+BatchNorm), Adam", Blocks, optax.adam(1e-3), True,
               target=1.2),
  ]
