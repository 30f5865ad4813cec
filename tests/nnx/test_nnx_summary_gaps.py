"""nnx.tabulate paths the main summary tests leave out: super() calls, submodules without
``__call__``, inherited ``__call__`` and calls that cannot be measured alone."""

import jax.numpy as jnp

from flaxen import nnx
from flaxen.nnx.summary import summarize

X = jnp.ones((2, 3))


class Doubled(nnx.Linear):
  """A subclass whose ``__call__`` runs the patched ``Linear.__call__`` through super()."""

  def __call__(self, x):
    return 2 * super().__call__(x)


class Plain(nnx.Linear):
  """Inherits ``__call__``: tabulate must not leave one on the class."""


class Holder(nnx.Module):
  """No ``__call__`` of its own: its parent calls its layers directly."""

  def __init__(self, rngs):
    self.first = nnx.Linear(3, 3, rngs=rngs)


class Net(nnx.Module):
  def __init__(self, rngs):
    self.holder = Holder(rngs)
    self.doubled = Doubled(3, 4, rngs=rngs)
    self.plain = Plain(4, 2, rngs=rngs)

  def __call__(self, x):
    return self.plain(self.doubled(self.holder.first(x)))


def test_super_calls_inherited_calls_and_holders_without_call():
  model = Net(nnx.Rngs(0))
  rows, totals = summarize(model, X)
  assert [(r.path, r.module_type) for r in rows] == [
    ((), "Net"), (("holder", "first"), "Linear"), (("doubled",), "Doubled"),
    (("plain",), "Plain")]  # one row for Doubled although Linear.__call__ ran inside it
  assert rows[2].output.shape == (2, 4)
  assert "__call__" not in Plain.__dict__ and "__call__" not in Holder.__dict__
  assert totals["Param"][0] == 3 * 3 + 3 + 3 * 4 + 4 + 4 * 2 + 2
  y = model(X)  # the classes work as before
  assert y.shape == (2, 2)


class NeedsParent(nnx.Module):
  """Reads a value its parent sets right before the call."""

  def __call__(self, x):
    return x * self.scale


class Parent(nnx.Module):
  def __init__(self):
    self.child = NeedsParent()

  def __call__(self, x):
    self.child.scale = 2.0
    return self.child(x) + 1


def test_flops_of_a_call_that_needs_its_parent_are_missing():
  rows, _ = summarize(Parent(), X, compute_flops=True)
  assert [r.path for r in rows] == [(), ("child",)]
  assert rows[0].flops is not None and rows[1].flops is None
  text = nnx.tabulate(Parent(), X, compute_flops=True, row_filter=lambda r: r.path != ())
  cells = [[c.strip() for c in line.split("│")[1:-1]]
           for line in text.splitlines() if line.startswith("│")]
  assert cells[0] == ["child", "NeedsParent", "float32[2,3]", "float32[2,3]", "n/a"]
  assert len(cells) == 2  # the root row was filtered out; the totals row stays
