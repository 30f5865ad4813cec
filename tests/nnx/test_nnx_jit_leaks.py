"""nnx.jit: a tracer left outside the graph's state raises TracerLeakError when it happens."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx


class Box:
  """A plain object: held as a static attribute value, not walked as state."""


class Model(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.ones(2))
    self.box = Box()


def test_tracer_in_a_static_object_is_reported_with_its_path():
  @nnx.jit
  def f(m, x):
    m.box.kept = m.w.value * x

  with pytest.raises(errors.TracerLeakError, match=r"'box/kept' of graph argument #0") as e:
    f(Model(), 2.0)
  assert e.value.path == ("box", "kept") and isinstance(e.value, TypeError)
  assert "nnx.Variable" in str(e.value)


def test_tracer_in_a_closure_and_in_variable_metadata():
  @nnx.jit
  def closure(m, x):
    y = x + 1
    m.fn = lambda: y

  with pytest.raises(errors.TracerLeakError) as e:
    closure(Model(), jnp.ones(2))
  assert e.value.path == ("fn", "y")

  @nnx.jit
  def metadata(other, m, x):
    m.w.set_metadata(scale=x)

  with pytest.raises(errors.TracerLeakError, match="graph argument #1") as e:
    metadata(Model(), Model(), jnp.ones(()))
  assert e.value.path == ("w", "scale")


def test_state_and_outer_tracers_are_not_leaks():
  @nnx.jit
  def store(m, x):
    m.raw = x * 2  # an array attribute is state: a concrete value comes back
    m.extra = nnx.Variable(x + 1)
    return x

  m = Model()
  store(m, jnp.ones(2))
  np.testing.assert_array_equal(m.raw, 2 * jnp.ones(2))
  np.testing.assert_array_equal(m.extra.value, 2 * jnp.ones(2))

  @jax.jit
  def outer(y):
    # y is a tracer of the outer trace: valid where the inner call returns to
    nnx.jit(lambda m: setattr(m.box, "outer", y))(Model())
    return y * 2

  np.testing.assert_array_equal(outer(jnp.ones(2)), 2 * jnp.ones(2))
