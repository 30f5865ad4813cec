"""Tree mode (graph=False) beside graph mode for the functional graph API, and nnx.compat."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx


def _model():
  return nnx.Linear(2, 3, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("graph", [True, False])
def test_split_merge_round_trip(graph):
  m = _model()
  gd, st = nnx.split(m, graph=graph)
  m2 = nnx.merge(gd, st)
  np.testing.assert_array_equal(m2.kernel.value, m.kernel.value)
  assert m2 is not m and m2.kernel is m.kernel  # merge reuses the State's Variables
  assert nnx.merge(gd, st, copy=True).kernel is not m.kernel
  # the State's leaves are those JAX sees in the Module as a pytree
  assert [x.shape for x in jax.tree.leaves(st)] == [x.shape for x in jax.tree.leaves(m)]


@pytest.mark.parametrize("fn", [nnx.split, nnx.state, nnx.graphdef, nnx.clone, nnx.variables])
def test_tree_mode_rejects_shared_variable(fn):
  v = nnx.Param(jnp.ones(2))
  with pytest.raises(errors.SharedReferenceError, match="found at paths '0' and '1'"):
    fn([v, v], graph=False)
  fn([v, v], graph=True)  # graph mode keeps the sharing


def test_tree_mode_rejects_shared_module_and_names_paths():
  class Pair(nnx.Module):
    def __init__(self):
      self.a = _model()
      self.b = self.a
  with pytest.raises(errors.SharedReferenceError) as info:
    nnx.split(Pair(), graph=False)
  assert info.value.paths == (("a",), ("b",))


def test_tree_mode_rejects_cycle_in_iter_graph():
  a = nnx.List([1])
  a.append(nnx.List([2, a]))
  with pytest.raises(errors.SharedReferenceError):
    list(nnx.iter_graph(a, graph=False))
  assert len([p for p, n in nnx.iter_graph(a, graph=True) if isinstance(n, nnx.List)]) == 2


def test_tree_mode_rejects_non_pytree_class():
  class Opaque(nnx.Pytree, pytree=False):
    def __init__(self):
      self.x = 1
  with pytest.raises(errors.NotAPytreeError, match="Found at path '0'"):
    nnx.split([Opaque()], graph=False)
  with pytest.raises(errors.NotAPytreeError):
    list(nnx.iter_children(Opaque(), graph=False))
  nnx.split([Opaque()], graph=True)


def test_default_mode_comes_from_set_graph_mode():
  v = nnx.Param(jnp.ones(2))
  with nnx.set_graph_mode(False):
    with pytest.raises(errors.SharedReferenceError):
      nnx.split([v, v])
    nnx.compat.split([v, v])  # compat: graph mode whatever the default
  nnx.split([v, v])


@pytest.mark.parametrize("graph", [True, False])
def test_iter_modules_and_children(graph):
  class Block(nnx.Module):
    def __init__(self):
      self.lin = _model()
      self.drop = nnx.Dropout(0.5)
  b = Block()
  assert [type(m).__name__ for _, m in nnx.iter_modules(b, graph=graph)] == [
    "Dropout", "Linear", "Block"]
  assert [k for k, _ in nnx.iter_children(b, graph=graph)] == ["drop", "lin"]


def test_clone_variables_and_arrays():
  m = _model()
  shared = nnx.clone(m)
  assert shared.kernel is not m.kernel and shared.kernel.value is m.kernel.value
  distinct = nnx.clone(m, arrays=True)
  assert distinct.kernel.value is not m.kernel.value
  np.testing.assert_array_equal(distinct.kernel.value, m.kernel.value)
  same_vars = nnx.clone(m, variables=False)
  assert same_vars is not m and same_vars.kernel is m.kernel


def test_compat_signatures_default_to_graph_mode():
  import inspect
  sig = inspect.signature(nnx.compat.split)
  assert sig.parameters["graph"].default is True
  assert inspect.signature(nnx.compat.jit).parameters["graph_updates"].default is True
  assert set(nnx.compat.__all__) >= {"split", "jit", "vmap", "iter_graph"}


def test_tree_mode_rejects_shared_array_refs():
  ref = jax.new_ref(jnp.array(1.0))
  with pytest.raises(errors.SharedReferenceError, match="Ref"):
    nnx.split([ref, ref], graph=False)
  nnx.split([ref, jax.new_ref(jnp.array(2.0))], graph=False)
