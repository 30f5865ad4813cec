"""nn.tabulate: a call that cannot run without its parent gets no FLOP count."""

import jax
import jax.numpy as jnp

import flaxen.linen as nn
from flaxen.linen.summary import summarize


class Child(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(x) * self.parent.factor  # reads its parent's attribute


class Parent(nn.Module):
  factor: float = 3.0

  @nn.compact
  def __call__(self, x):
    return Child()(x)


def test_flops_of_a_call_that_needs_its_parent_are_missing():
  rows, totals = summarize(Parent(), jax.random.key(0), jnp.ones((1, 4)), compute_flops=True,
                           compute_vjp_flops=True)
  by_path = {r.path: r for r in rows}
  assert by_path[()].flops > 0 and by_path[()].vjp_flops > by_path[()].flops
  assert by_path[("Child_0",)].flops is None and by_path[("Child_0",)].vjp_flops is None
  assert by_path[("Child_0", "Dense_0")].flops > 0  # the Dense inside runs alone
  assert totals == {"params": (4 * 2 + 2, 40)}
