"""summary_table paths the Linen and NNX summary tests leave out: byte units, the vjp
column, integer outputs under ``with_backward`` and cost analyses given as a list."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import summary_table as st


def _row(counts):
  return st.Row(("dense",), "Dense", (jnp.ones((2, 3)),), {}, jnp.ones((2, 4)), {}, counts,
                flops=10.0, vjp_flops=None)


def test_sizes_use_decimal_units_and_the_vjp_column_shows_missing_counts():
  counts = {"params": (3_000, 12_000), "batch_stats": (500_000, 2_000_000)}
  text = st.render("T", [_row(counts)], counts, show_flops=True, show_vjp_flops=True)
  header = text.splitlines()[2]
  assert "flops" in header and "vjp_flops" in header
  assert "12.0 KB" in text and "2.0 MB" in text
  assert "Total Parameters: 503,000 (2.0 MB)" in text
  assert "n/a" in text  # vjp_flops=None: the call could not be measured alone


def test_with_backward_gives_float0_cotangents_to_integer_outputs():
  def forward(x):
    return x * 3.0, jnp.argmax(x)

  (grads,) = st.with_backward(forward)(jnp.array([1.0, 5.0, 2.0]))  # one per float leaf
  np.testing.assert_allclose(grads[0], jnp.full(3, 3.0))  # d(sum(3x))/dx


def test_flops_of_reads_the_first_entry_of_a_list_cost(monkeypatch):
  class Lowered:
    def __init__(self, cost):
      self.cost = cost

    def cost_analysis(self):
      return self.cost

  def fake_jit(cost):
    return lambda fn: type("J", (), {"lower": lambda self, *a: Lowered(cost)})()

  monkeypatch.setattr(st.jax, "jit", fake_jit([{"flops": 7.0}, {"flops": 99.0}]))
  assert st.flops_of(lambda x: x, 1.0) == 7.0
  monkeypatch.setattr(st.jax, "jit", fake_jit([]))
  assert st.flops_of(lambda x: x, 1.0) == 0.0


def test_attribute_puts_unclaimed_variables_on_the_root():
  flat = {"params": {("w",): np.ones(2), ("a", "b", "k"): np.ones(3)}}
  own, counts = st.attribute([("a",)], flat, depth=None)
  assert list(own[()]["params"]) == ["w"] and list(own[("a",)]["params"]) == ["b"]
  assert counts[()]["params"] == (2, 16) and counts[("a",)]["params"] == (3, 24)
  assert jax.tree.leaves(own[("a",)])[0].shape == (3,)
