"""split / state / pop hand out the graph's own Variables; merge reuses a State's Variables
unless asked to copy (Flax 0.12's semantics)."""

import jax.numpy as jnp
import numpy as np

from flaxen import nnx


class Net(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.ones(2))
    self.s = nnx.BatchStat(jnp.zeros(()))
    self.sub = nnx.Dict(v=nnx.Param(jnp.full(3, 2.0)))
    self.w2 = self.w  # shared: kept once, at its first path (w)


def test_split_and_state_hold_the_models_own_variables():
  m = Net()
  for _ in range(2):  # the second split comes from the cached walk
    _, params, stats = nnx.split(m, nnx.Param, nnx.BatchStat)
    assert params["w"] is m.w and params["sub"]["v"] is m.sub["v"] and stats["s"] is m.s
  assert nnx.state(m, nnx.BatchStat)["s"] is m.s and nnx.state(m)["w"] is m.w
  params["w"].value = jnp.full(2, 7.0)  # a write through the State reaches the model
  np.testing.assert_array_equal(m.w.value, [7.0, 7.0])


def test_merge_reuses_the_states_variables_unless_copy():
  m = Net()
  graphdef, state = nnx.split(m)
  for _ in range(3):  # the first merge interprets, later ones run the compiled builders
    shared = nnx.merge(graphdef, state)
    assert shared is not m and shared.w is m.w and shared.w2 is m.w and shared.s is m.s
    copied = nnx.merge(graphdef, state, copy=True)
    assert copied.w is not m.w and copied.w2 is copied.w
    np.testing.assert_array_equal(copied.sub["v"].value, m.sub["v"].value)
  shared.s.value = jnp.ones(())
  assert float(m.s.value) == 1.0 and float(copied.s.value) == 0.0


def test_raw_values_become_new_variables():
  m = Net()
  graphdef, state = nnx.split(m)
  raw = nnx.State({"w": jnp.zeros(2), "s": jnp.ones(()), "sub": {"v": jnp.ones(3)}})
  built = nnx.merge(graphdef, raw)
  assert type(built.w) is nnx.Param and built.w is built.w2 and built.w is not m.w


def test_clone_copies_by_default_and_shares_when_asked():
  m = Net()
  c = nnx.clone(m)
  assert c.w is not m.w and c.w2 is c.w
  assert nnx.clone(m, variables=False).w is m.w


def test_pop_returns_the_removed_variables_themselves():
  m = Net()
  s = m.s
  popped = nnx.pop(m, nnx.BatchStat)
  assert popped["s"] is s and not hasattr(m, "s")
