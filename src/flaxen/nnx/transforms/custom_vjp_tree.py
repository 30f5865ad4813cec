"""``nnx.custom_vjp`` without graph updates (tree mode, or ``graph_updates=False``).

As with ``jax.custom_vjp``: ``fwd(*args)`` returns ``(out, residuals)`` and
``bwd(*nondiff_args, residuals, out_g)`` returns one cotangent per differentiable argument,
in that argument's own type (a Module for a Module, e.g. ``nnx.clone(m)`` with gradients
written into its Variables). If the function gave some input Variables new values, those
values leave as outputs too, and ``bwd`` gets their cotangents as a fourth argument:
``bwd(*nondiff_args, residuals, out_g, updates_g)``, one entry per differentiable argument
shaped like it, with ``None`` for every Variable that was not updated. New Variable values
are written back to the caller's Variables; structure changes stay inside.

Non-differentiable arguments that hold no arrays or graph objects are static (as JAX's
``nondiff_argnums``); the others are traced and get a zero cotangent.

>>> import jax, jax.numpy as jnp
>>> from flaxen import nnx
>>> @nnx.custom_vjp(graph=False)
... def f(m):
...   return jnp.sin(m.w[...])
>>> def f_fwd(m):
...   return f(m), jnp.cos(m.w[...])
>>> def f_bwd(cos_w, g):
...   m_g = nnx.Dict(w=nnx.Param(cos_w * g))
...   return (m_g,)
>>> f.defvjp(f_fwd, f_bwd)
>>> grads = nnx.grad(f, graph=False)(nnx.Dict(w=nnx.Param(jnp.array(0.0))))
>>> float(grads.w[...])
1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from flaxen.errors.nnx_transforms import DuplicateVariableError
from flaxen.nnx.graph import flatten
from flaxen.nnx.transforms import lift
from flaxen.nnx.transforms.tree_mode import PureArgs, Snapshot, pack_output
from flaxen.nnx.variables import Variable

__all__ = ["call"]


def _is_static(arg: Any) -> bool:
  """A non-differentiable argument JAX can hold as a static value (no arrays, no nodes)."""
  return not lift.find_nodes(arg)[2] and not any(
    isinstance(x, jax.Array | jax.core.Tracer) for x in jax.tree.leaves(arg))


def _check_no_sharing(pure: PureArgs, diff: set[int], name: str) -> None:
  """A Variable reached from a differentiated and a non-differentiated argument."""
  first: dict[int, tuple] = {}
  for k, node in enumerate(pure.nodes):
    a = pure.node_arg[k]
    for x in flatten(node)[1]:
      if isinstance(x, Variable):
        b, path = first.setdefault(id(x), (a, (a,)))
        if (a in diff) != (b in diff):
          raise DuplicateVariableError(name, x, path, (a,))


class _Call:
  """One call: the arguments as pure forms, and what the traces found out."""

  def __init__(self, owner: Any, args: tuple, tree: bool):
    self.owner, self.args, self.tree = owner, args, tree
    self.pure = PureArgs(args, tree, owner.name)
    nondiff = set(owner.static_argnums)
    self.diff = [a for a in range(len(args)) if a not in nondiff]
    if not tree:
      _check_no_sharing(self.pure, set(self.diff), owner.name)
    self.nondiff = tuple(sorted(nondiff))
    self.static = tuple(a for a in self.nondiff if _is_static(args[a]))
    self.traced_nondiff = tuple(a for a in self.nondiff if a not in self.static)
    self.written: tuple[int, ...] = ()
    self.out_nodes = None

  def _run(self, fn: Callable, xs: tuple) -> tuple:
    """``fn`` on the arguments rebuilt from ``xs`` (statics in place): ``(fn's output,
    new Variable values)``."""
    forms = [None if a in self.static else x for a, x in enumerate(xs)]
    args, nodes = self.pure.rebuild(forms)
    args = [self.args[a] if a in self.static else x for a, x in enumerate(args)]
    snapshot = Snapshot(nodes)
    out = fn(*args)
    self.written, new_values = snapshot.updates(trim=True)
    self.inputs = snapshot.variable_ids()
    return out, new_values

  def _updates_g(self, values_g: list) -> tuple:
    """Per differentiable argument, its shape with the updated Variables' cotangents and
    ``None`` for the other Variables."""
    values = list(self.pure.values)
    for j, g in zip(self.written, values_g, strict=True):
      values[j] = g
    forms = [self.pure._pure_arg(a, values) for a in range(len(self.args))]
    args, nodes = self.pure.rebuild(forms)
    keep = {id(x) for j, x in enumerate(flatten(tuple(nodes))[1]) if j in self.written}
    return tuple(jax.tree.map(lambda x: x if id(x) in keep else None, args[a],
                              is_leaf=lambda x: isinstance(x, Variable)) for a in self.diff)

  def _form(self, a: int, cotangent: Any) -> Any:
    """The user's cotangent of argument ``a`` as that argument's pure form."""
    if cotangent is None:
      return None
    form = PureArgs((cotangent,), False, self.owner.name).pure[0]
    return form

  def run(self) -> Any:
    owner = self.owner

    def primal(*xs: Any) -> tuple:
      out, new_values = self._run(owner.fun, xs)
      out, self.out_nodes = pack_output(out, self.inputs, owner.name, self.tree)
      return out, new_values

    def fwd(*xs: Any) -> tuple:
      (out, res), new_values = self._run(owner.fwd, xs)
      out, self.out_nodes = pack_output(out, self.inputs, owner.name, self.tree)
      # traced non-differentiable arguments reach bwd through the residuals
      return (out, new_values), (res, [xs[a] for a in self.traced_nondiff])

    def bwd(*xs: Any) -> tuple:
      *statics, (res, nondiff_forms), (out_g, values_g) = xs
      forms: list[Any] = [None] * len(self.args)
      for a, form in zip(self.traced_nondiff, nondiff_forms, strict=True):
        forms[a] = form
      rebuilt, _ = self.pure.rebuild(forms, fill=self.pure.values)
      given = dict(zip(self.static, statics, strict=True))
      statics = [given[a] if a in given else rebuilt[a] for a in self.nondiff]
      if self.out_nodes is not None:
        out_g = self.out_nodes.unflatten(out_g)
      if self.written:
        cts = owner.bwd(*statics, res, out_g, self._updates_g(values_g))
      else:
        cts = owner.bwd(*statics, res, out_g)
      cts = dict(zip(self.diff, cts, strict=True))
      return tuple(self._form(a, cts[a]) if a in cts else None
                   for a in range(len(self.args)) if a not in self.static)

    f = jax.custom_vjp(primal, nondiff_argnums=self.static)
    f.defvjp(fwd, bwd)
    xs = [self.args[a] if a in self.static else form for a, form in enumerate(self.pure.pure)]
    out, new_values = f(*xs)
    self.pure.write_back(self.written, new_values)
    return out if self.out_nodes is None else self.out_nodes.unflatten(out)


def call(owner: Any, args: tuple, tree: bool) -> Any:
  """Runs ``owner`` (a ``CustomVjp``) on ``args`` without graph updates."""
  return _Call(owner, args, tree).run()
