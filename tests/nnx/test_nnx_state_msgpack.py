"""A whole NNX State through flaxen.serialization (state dicts and msgpack bytes)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx, serialization


class Net(nnx.Module):
  def __init__(self, rngs):
    self.layers = nnx.List([nnx.Linear(3, 4, rngs=rngs), nnx.BatchNorm(4, rngs=rngs)])
    self.count = nnx.Variable(jnp.int32(5), tag="counter")


def test_state_round_trips_through_bytes_into_a_fresh_model():
  model, fresh = Net(nnx.Rngs(0)), Net(nnx.Rngs(1))
  model.layers[1].mean.value = jnp.arange(4.0)
  data = serialization.to_bytes(nnx.state(model))
  restored = serialization.from_bytes(nnx.state(fresh), data)
  assert serialization.to_state_dict(nnx.state(model))["layers"]["0"]["kernel"].shape == (3, 4)
  for (path, a), (path_b, b) in zip(nnx.to_flat_state(nnx.state(model)),
                                    nnx.to_flat_state(restored), strict=True):
    assert path == path_b and type(a) is type(b) and a.get_metadata() == b.get_metadata()
    np.testing.assert_array_equal(a.value, b.value)
  nnx.update(fresh, restored)
  x = jax.random.normal(jax.random.key(2), (2, 3))
  model.eval(), fresh.eval()
  np.testing.assert_array_equal(fresh.layers[1](fresh.layers[0](x)),
                                model.layers[1](model.layers[0](x)))


def test_restore_into_a_state_of_another_shape_names_the_path():
  data = serialization.to_bytes(nnx.state(nnx.Linear(3, 4, rngs=nnx.Rngs(0))))
  # As in Flax, an array leaf takes the saved array whatever its shape
  restored = serialization.from_bytes(nnx.state(nnx.Linear(2, 4, rngs=nnx.Rngs(0))), data)
  assert restored["kernel"].value.shape == (3, 4)
  with pytest.raises(errors.StateMismatchError, match="bias"):
    serialization.from_bytes(nnx.state(nnx.Linear(3, 4, use_bias=False, rngs=nnx.Rngs(0))),
                             data)
