"""Property: any mix of structural mutations gives the same graph under nnx.jit as eagerly."""

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import nnx


class Leaf(nnx.Module):
  def __init__(self, value):
    self.p = nnx.Param(jnp.full((2,), value))


class Root(nnx.Module):
  def __init__(self):
    self.a = Leaf(1.0)
    self.b = Leaf(2.0)
    self.items = nnx.List([Leaf(3.0)])
    self.alias = self.a.p
    self.flag = 0


def add_param(m):
  m.extra = nnx.Param(m.a.p.value * 2)


def delete_attr(m):
  if hasattr(m, "alias"):
    del m.alias


def replace_child(m):
  m.b = Leaf(5.0)


def swap_children(m):
  m.a, m.b = m.b, m.a


def set_static(m):
  m.flag = m.flag + 1


def append_item(m):
  m.items.append(Leaf(7.0))


def pop_item(m):
  if len(m.items):
    m.items.pop()


def alias_variable(m):
  m.items.append(m.b)


def bump_values(m):
  m.a.p.value = m.a.p.value + 1


OPS = [add_param, delete_attr, replace_child, swap_children, set_static, append_item, pop_item,
       alias_variable, bump_values]


def _signature(node):
  gd, leaves, paths, _ = nnx.graph.flatten(node)
  return gd, paths, [np.asarray(v.value).tolist() for v in leaves]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(OPS), min_size=1, max_size=4), st.booleans())
def test_jit_mutations_match_eager(ops, twice):
  def mutate(m):
    for op in ops:
      op(m)

  eager, jitted = Root(), Root()
  kept = jitted.items
  step = nnx.jit(mutate)
  for _ in range(2 if twice else 1):
    mutate(eager)
    step(jitted)
  assert _signature(jitted) == _signature(eager)
  assert jitted.items is kept  # objects that existed keep their identity
