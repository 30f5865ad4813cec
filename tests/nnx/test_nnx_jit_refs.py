"""nnx.jit with jax.Ref (mutable array) arguments and outputs."""

import jax
import jax.numpy as jnp
import pytest

from flaxen import nnx


@pytest.mark.parametrize("graph,graph_updates", [(True, True), (True, False), (False, False)])
def test_ref_argument_written_and_returned(graph, graph_updates):
  ref = jax.new_ref(jnp.array(1.0))

  @nnx.jit(graph=graph, graph_updates=graph_updates)
  def f(r, scale):
    r[...] += scale
    return {"new": jax.new_ref(2 * r[...]), "same": r}

  for step in (1, 2):  # the second call reuses the trace
    out = f(ref, jnp.array(0.5))
    assert out["same"] is ref  # the caller's own Ref comes back
    assert ref[...] == 1.0 + 0.5 * step
    assert isinstance(out["new"], jax.Ref) and out["new"] is not ref
    assert out["new"][...] == 2 * (1.0 + 0.5 * step)


def test_new_ref_from_a_module_call_on_the_fast_path():
  model = nnx.Linear(1, 1, rngs=nnx.Rngs(0))
  f = nnx.jit(lambda m, x: jax.new_ref(m(x)))
  x = jnp.ones((1, 1))
  outs = [f(model, x) for _ in range(3)]  # array and Module arguments: the cached path
  expected = x @ model.kernel.value + model.bias.value
  for out in outs:
    assert isinstance(out, jax.Ref)
    assert out[...] == expected  # the same float32 ops as the layer


def test_cyclic_module_output_is_not_entered():
  class Foo(nnx.Module):
    def __init__(self):
      self.ref = nnx.data(None)

  @nnx.jit
  def f(m):
    m.ref = m  # a cycle: the output must not be walked as a pytree
    return m

  m = Foo()
  assert f(m) is m and m.ref is m
