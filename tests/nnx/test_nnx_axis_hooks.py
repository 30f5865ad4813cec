"""vmap / scan with transform_metadata: Variable.add_axis / remove_axis run (subclass
overrides too), and tuple metadata named by the other keys gets the axis as well."""

import jax
import jax.numpy as jnp

from flaxen import nnx

CALLS = []


class Traced(nnx.Param):
  def add_axis(self, axis_index, axis_name):
    CALLS.append(("add", axis_index, axis_name))
    super().add_axis(axis_index, axis_name)

  def remove_axis(self, axis_index, axis_name):
    CALLS.append(("remove", axis_index, axis_name))
    super().remove_axis(axis_index, axis_name)


class Layer(nnx.Module):
  def __init__(self, key):
    self.w = Traced(jax.random.normal(key, (3, 3)), out_sharding=("a", "b"), tag=("x", "y"))

  def __call__(self, h):
    assert self.w.out_sharding == ("a", "b") and self.w.tag == ("x", "y")  # axis removed
    return jnp.tanh(h @ self.w.value), None


def test_hooks_and_other_metadata_keys_follow_the_axis():
  CALLS.clear()
  meta = {nnx.PARTITION_NAME: "layers", "tag": "t"}
  keys = jax.random.split(jax.random.key(0), 4)
  stack = nnx.vmap(Layer, in_axes=0, transform_metadata=meta)(keys)
  assert stack.w.shape == (4, 3, 3)
  assert stack.w.out_sharding == ("layers", "a", "b") and stack.w.tag == ("t", "x", "y")
  assert CALLS == [("add", 0, "layers")]

  h = jnp.ones(3)
  run = nnx.scan(lambda m, h: m(h), in_axes=(0, nnx.Carry), transform_metadata=meta)
  out, _ = run(stack, h)
  assert CALLS == [("add", 0, "layers"), ("remove", 0, "layers"), ("add", 0, "layers")]
  assert stack.w.tag == ("t", "x", "y")
  ref = h  # the scan by hand
  for i in range(4):
    ref = jnp.tanh(ref @ stack.w.value[i])
  assert jnp.allclose(out, ref, atol=1e-6)  # float32 rounding of the same ops
