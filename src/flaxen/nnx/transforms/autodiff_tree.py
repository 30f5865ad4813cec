"""``grad``, ``value_and_grad``, ``vjp`` and ``jvp`` without graph updates.

As in JAX, an argument is differentiated whole: a graph object's gradient is an object of
the same type (a Module for a Module) whose Variables hold the gradients of every one of its
Variables, not a ``State`` of its ``nnx.Param``s. New Variable values the function sets
are written back to the caller's Variables; structure changes stay inside. In graph mode
shared Variables are kept shared (one gradient), and a Variable reached both from a
differentiated argument and from another one is an error.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> m = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
>>> grads = nnx.grad(lambda m: m(jnp.ones((1, 2))).sum(), graph=False)(m)
>>> type(grads).__name__, grads.bias[...]
('Linear', Array([1.], dtype=float32))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax

from flaxen.errors.nnx_transforms import InconsistentAliasingError
from flaxen.nnx.graph import flatten
from flaxen.nnx.transforms.tree_mode import PureArgs, Snapshot, pack_output

__all__ = ["value_and_grad", "vjp", "jvp"]


def check_consistent(pure: PureArgs, diff: set[int], transform: str) -> None:
  """Graph mode: a Variable reached from a differentiated argument and from one that is
  not would get a gradient on one path only."""
  reach: dict[int, set[int]] = {}
  for k, node in enumerate(pure.nodes):
    for x in flatten(node)[1]:
      reach.setdefault(id(x), set()).add(pure.node_arg[k])
  for x in pure.state:
    owners = reach.get(id(x), set())
    kinds = {a in diff for a in owners}
    if len(kinds) > 1:
      a, b = sorted(owners)[:2]
      raise InconsistentAliasingError(transform, x, f"argnum {a}", f"argnum {b}")


class _Traced:
  """The function run on rebuilt arguments inside a JAX transform; what it found out at
  trace time (the Variables to write back, the output's graph objects) is kept here."""

  def __init__(self, f: Callable, pure: PureArgs, has_aux: bool, tree: bool, name: str):
    self.f, self.pure, self.has_aux, self.tree, self.name = f, pure, has_aux, tree, name
    self.written: tuple[int, ...] = ()
    self.aux_nodes = None
    self.out_nodes = None

  def run(self, forms: list, pack_out: bool = False) -> tuple:
    """``(output, (aux, new values))`` of ``f`` on the arguments rebuilt from ``forms``."""
    args, nodes = self.pure.rebuild(forms)
    snapshot = Snapshot(nodes)
    out = self.f(*args)
    out, aux = out if self.has_aux else (out, None)
    self.written, new_values = snapshot.updates(trim=True)
    inputs = snapshot.variable_ids()
    aux, self.aux_nodes = pack_output(aux, inputs, self.name, self.tree)
    if pack_out:
      out, self.out_nodes = pack_output(out, inputs, self.name, self.tree)
    return out, (aux, new_values)

  def finish(self, aux: Any, new_values: list) -> Any:
    """Writes the Variable updates back; returns ``aux`` with its graph objects rebuilt."""
    self.pure.write_back(self.written, new_values)
    return aux if self.aux_nodes is None else self.aux_nodes.unflatten(aux)

  def typed(self, forms: Sequence[Any]) -> tuple:
    """Per-argument results (gradients, cotangents) in the arguments' own types."""
    args, _ = self.pure.rebuild(list(forms))
    return args


def value_and_grad(f: Callable, argnums: int | Sequence[int], has_aux: bool,
                   holomorphic: bool, allow_int: bool, tree: bool) -> Callable:
  """``nnx.value_and_grad`` without graph updates (see the module docstring)."""
  single = isinstance(argnums, int)
  nums = (argnums,) if single else tuple(argnums)

  @functools.wraps(f)
  def wrapper(*args: Any) -> Any:
    pure = PureArgs(args, tree, "nnx.grad")
    if not tree:
      check_consistent(pure, set(nums), "nnx.grad")
    traced = _Traced(f, pure, has_aux, tree, "nnx.grad")

    def fn(*diff: Any) -> tuple:
      forms = list(pure.pure)
      for a, form in zip(nums, diff, strict=True):
        forms[a] = form
      return traced.run(forms)

    vg = jax.value_and_grad(fn, argnums=tuple(range(len(nums))), has_aux=True,
                            holomorphic=holomorphic, allow_int=allow_int)
    (value, (aux, new_values)), grads = vg(*[pure.pure[a] for a in nums])
    aux = traced.finish(aux, new_values)
    forms: list[Any] = [None] * len(args)
    for a, g in zip(nums, grads, strict=True):
      forms[a] = g
    typed = traced.typed(forms)
    grads = tuple(typed[a] for a in nums)
    return ((value, aux) if has_aux else value), (grads[0] if single else grads)

  return wrapper


def vjp(f: Callable, primals: tuple, has_aux: bool, tree: bool) -> tuple:
  """``nnx.vjp`` without graph updates: cotangents of graph objects are graph objects."""
  pure = PureArgs(primals, tree, "nnx.vjp")
  traced = _Traced(f, pure, has_aux, tree, "nnx.vjp")
  out, vjp_fn, (aux, new_values) = jax.vjp(lambda *forms: traced.run(list(forms)),
                                           *pure.pure, has_aux=True)
  aux = traced.finish(aux, new_values)

  def pullback(cotangent: Any) -> tuple:
    return traced.typed(vjp_fn(cotangent))

  return (out, pullback, aux) if has_aux else (out, pullback)


def jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool,
        tree: bool) -> tuple:
  """``nnx.jvp`` without graph updates: the tangent of a graph object is an object of the
  same structure (e.g. ``jax.tree.map(jnp.ones_like, model)``)."""
  pure = PureArgs(tuple(primals), tree, "nnx.jvp")
  tangent_forms = PureArgs(tuple(tangents), False, "nnx.jvp").pure
  traced = _Traced(f, pure, has_aux, tree, "nnx.jvp")
  out, tangent_out, (aux, new_values) = jax.jvp(
    lambda *forms: traced.run(list(forms)), pure.pure, tangent_forms, has_aux=True)
  aux = traced.finish(aux, new_values)
  return (out, tangent_out, aux) if has_aux else (out, tangent_out)
