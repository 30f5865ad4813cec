"""Properties of flaxen's msgpack bytes: re-encoding restored state gives the same bytes,
and array payloads of any bytes restore to valid values or raise SerializationError."""

import jax
import ml_dtypes
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import errors
from flaxen.msgpack_codec import msgpack_restore, msgpack_serialize

CI = settings.get_profile("ci")
DTYPES = ["bool", "int8", "uint16", "float32", "complex64", "bfloat16", "float8_e4m3fn"]


@st.composite
def payload_arrays(draw):
  """(shape, dtype name, buffer): the three fields of an array extension, bytes random."""
  name = draw(st.sampled_from(DTYPES))
  dtype = np.dtype(getattr(ml_dtypes, name, name))
  shape = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
  size = int(np.prod(shape)) * dtype.itemsize
  return shape, name, dtype, draw(st.binary(min_size=size, max_size=size))


def encoded(shape, name, buffer) -> bytes:
  ext = msgpack.ExtType(1, msgpack.packb((shape, name, buffer), use_bin_type=True))
  return msgpack.packb({"x": ext}, use_bin_type=True)


@CI
@given(payload_arrays())
def test_any_array_bytes_restore_exactly_or_raise(array):
  shape, name, dtype, buffer = array
  data = encoded(shape, name, buffer)
  if dtype == np.bool_ and set(buffer) - {0, 1}:
    with pytest.raises(errors.SerializationError, match="Bool data"):
      msgpack_restore(data)
    return
  x = msgpack_restore(data)["x"]
  assert x.shape == shape and x.dtype == dtype and x.tobytes() == buffer
  assert msgpack_serialize({"x": x}) == data  # the same bytes back


leaves = (
  st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
  | st.text(max_size=4) | st.binary(max_size=4) | st.complex_numbers(allow_nan=False)
  | payload_arrays().filter(lambda a: a[2] != np.bool_ or not set(a[3]) - {0, 1}).map(
    lambda a: np.frombuffer(a[3], a[2]).reshape(a[0]).copy())
)
states = st.recursive(leaves, lambda c: st.dictionaries(st.text(max_size=3), c, max_size=3)
                      | st.lists(c, max_size=3), max_leaves=8)


@CI
@given(states)
def test_reencoding_restored_state_gives_the_same_bytes(state):
  data = msgpack_serialize(state)
  assert msgpack_serialize(msgpack_restore(data)) == data


map_keys = st.text(max_size=2) | st.integers(-3, 3) | st.floats(allow_nan=False) | st.binary(
  max_size=2) | st.none()


@CI
@given(st.dictionaries(map_keys, st.integers(-5, 5), max_size=4))
def test_maps_whose_keys_jax_cannot_sort_raise(node):
  data = msgpack.packb({"inner": node}, use_bin_type=True)
  try:
    sorted(node)
  except TypeError:
    with pytest.raises(errors.SerializationError, match="do not sort together"):
      msgpack_restore(data)
    return
  restored = msgpack_restore(data)
  assert restored == {"inner": node}
  assert jax.tree.leaves(restored) == jax.tree.leaves({"inner": node})
