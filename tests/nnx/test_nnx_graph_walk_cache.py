"""split / state / graphdef reuse a cached walk per root: every structural change is seen.

The cache is keyed by the root objects and validated by the structural epoch and the
objects' versions (as nnx.jit's). Each test changes what a stale entry would get wrong and
compares against the graph as it now is.
"""

import gc
import weakref

import jax.numpy as jnp
import numpy as np

from flaxen import nnx
from flaxen.nnx import graph


class Block(nnx.Module):
  def __init__(self, n: int = 2):
    self.n = n
    self.w = nnx.Param(jnp.ones(n))
    self.layers = nnx.List([nnx.Param(jnp.zeros(1))])


def _fresh(node):
  """The walk without the cache: what split must agree with."""
  return graph.walk(node)


def test_repeated_split_reuses_the_walk_and_hands_out_the_variables():
  m = Block()
  gd1, s1 = nnx.split(m)
  assert graph.cached_walk(m) is graph.cached_walk(m)
  m.w.value = jnp.full(2, 5.0)  # a value, not structure
  gd2, s2 = nnx.split(m)
  assert gd2 is gd1 and gd2 == _fresh(m)[0]
  np.testing.assert_array_equal(s2["w"].value, [5.0, 5.0])
  assert s2["w"] is m.w and s1["w"] is m.w  # the model's own Variable, as in Flax 0.12


def test_attribute_container_and_static_changes_are_seen():
  m = Block()
  nnx.split(m)
  m.extra = nnx.Linear(1, 1, rngs=nnx.Rngs(0))
  assert "extra" in nnx.state(m)
  m.layers.append(nnx.BatchStat(jnp.ones(3)))
  assert [p for p, _ in nnx.state(m, nnx.BatchStat).flat_state()] == [("layers", 1)]
  m.n = 9
  m.sizes = [1]
  nnx.graphdef(m)
  m.sizes.append(2)  # a StaticList: bumps its holder
  gd = nnx.graphdef(m)
  assert gd == _fresh(m)[0] and nnx.merge(gd, nnx.state(m)).sizes == [1, 2]
  del m.extra
  assert "extra" not in nnx.state(m)


def test_metadata_changes_and_raw_arrays_are_seen():
  m = Block()
  gd1 = nnx.graphdef(m)
  m.w.set_metadata(sharding=("x",))
  gd2 = nnx.graphdef(m)
  assert gd2 != gd1 and nnx.merge(gd2, nnx.state(m)).w.sharding == ("x",)
  m.raw = jnp.zeros(2)  # raw array leaves: never cached, re-read every time
  nnx.split(m)
  m.raw = jnp.ones(2)
  np.testing.assert_array_equal(nnx.state(m)["raw"], [1.0, 1.0])


def test_tuple_roots_filters_and_changes_in_a_nested_object():
  a, b = Block(), Block(3)
  gd, params, rest = nnx.split((a, b), nnx.Param, ...)
  assert gd == _fresh((a, b))[0] and len(params.flat_state()) == 4 and len(rest) == 0
  b.layers[0] = nnx.BatchStat(jnp.zeros(1))
  _, params, rest = nnx.split((a, b), nnx.Param, ...)
  assert [p for p, _ in rest.flat_state()] == [(1, "layers", 0)]
  assert nnx.graphdef([a, b]) != nnx.graphdef((a, b))


def test_the_cache_does_not_keep_models_alive():
  m = Block()
  nnx.split(m)
  nnx.state((m, Block()))
  ref = weakref.ref(m)
  del m
  gc.collect()
  assert ref() is None
