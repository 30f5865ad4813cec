"""flaxen.msgpack_codec: the wire format, and that decoding untrusted bytes is safe."""

import jax
import jax.numpy as jnp
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import errors, msgpack_codec
from flaxen.msgpack_codec import msgpack_restore, msgpack_serialize


def ext(code: int, *payload) -> msgpack.ExtType:
  return msgpack.ExtType(code, msgpack.packb(payload, use_bin_type=True))


def packed(tree) -> bytes:
  return msgpack.packb(tree, use_bin_type=True)


def array_payload(shape, dtype_name, buffer) -> bytes:
  return packed({"x": ext(1, shape, dtype_name, buffer)})


VALID = msgpack_serialize({
  "w": np.arange(6, dtype=np.float32).reshape(2, 3),
  "layers": {"0": {"b": np.int8(3)}, "1": [1.5, 2 + 1j, None, "s", b"raw"]},
})


# --------------------------------------------------------------------- wire format


def test_array_is_extension_1_with_shape_dtype_and_c_order_bytes():
  x = np.arange(6, dtype=np.int16).reshape(2, 3).T  # not C-contiguous
  raw = msgpack.unpackb(msgpack_serialize({"x": x}), raw=False)["x"]
  assert raw.code == 1
  shape, dtype_name, buffer = msgpack.unpackb(raw.data, raw=False)
  assert (shape, dtype_name, buffer) == ([3, 2], "int16", np.ascontiguousarray(x).tobytes())


def test_big_endian_arrays_keep_their_values():
  x = np.arange(3, dtype=">i4")
  out = msgpack_restore(msgpack_serialize({"x": x, "s": x[2]}))
  assert out["x"].tolist() == [0, 1, 2] and out["x"].dtype == np.int32
  assert out["s"] == 2


def test_scalar_and_complex_extensions():
  raw = msgpack.unpackb(msgpack_serialize([np.float16(1.5), 3 - 2j]), raw=False)
  assert raw[0].code == 3
  # Flax's layout: (shape (), dtype name, bytes); the older (dtype name, bytes) still reads
  assert msgpack.unpackb(raw[0].data, raw=False) == [[], "float16", np.float16(1.5).tobytes()]
  old = msgpack.packb(("float16", np.float16(1.5).tobytes()), use_bin_type=True)
  assert msgpack_restore(msgpack.packb([msgpack.ExtType(3, old)]))[0] == np.float16(1.5)
  assert raw[1].code == 2 and msgpack.unpackb(raw[1].data) == [3.0, -2.0]


def test_bytes_written_by_hand_in_the_flax_format_restore():
  data = array_payload([2], "bfloat16", np.array([1, 2], jnp.bfloat16).tobytes())
  out = msgpack_restore(data)["x"]
  assert out.dtype == jnp.bfloat16 and out.tolist() == [1, 2]


def test_restored_arrays_are_writable_copies():
  data = msgpack_serialize({"x": np.zeros(3, np.float32)})
  x = msgpack_restore(data)["x"]
  x[0] = 1.0  # frombuffer alone would give a read-only view of the payload
  assert x.tolist() == [1.0, 0.0, 0.0]


def test_jax_arrays_and_tuples_encode():
  out = msgpack_restore(msgpack_serialize({"a": (jnp.ones(2, jnp.bfloat16), 1)}))
  assert isinstance(out["a"], list) and out["a"][1] == 1
  assert out["a"][0].dtype == jnp.bfloat16


def test_subclasses_of_builtin_types_are_stored_as_the_base_type():
  class Name(str):
    pass

  out = msgpack_restore(msgpack_serialize({Name("k"): Name("v"), "t": (1, 2)}))
  assert out == {"k": "v", "t": [1, 2]} and type(out["k"]) is str


def test_large_arrays_are_chunked_and_joined(monkeypatch):
  monkeypatch.setattr(msgpack_codec, "MAX_CHUNK_BYTES", 64)
  x = np.arange(100, dtype=np.float32).reshape(4, 25)
  data = msgpack_serialize({"x": x, "l": [x]})
  raw = msgpack.unpackb(data, raw=False, strict_map_key=False)
  assert raw["x"]["__msgpack_chunked_array__"] is True and len(raw["x"]["chunks"]) == 7
  out = msgpack_restore(data)
  np.testing.assert_array_equal(out["x"], x)
  np.testing.assert_array_equal(out["l"][0], x)


# ----------------------------------------------------------------- encode errors


def test_typed_prng_key_cannot_be_serialized():
  with pytest.raises(errors.SerializationError, match="key_data"):
    msgpack_serialize({"rng": jax.random.key(0)})


def test_object_array_cannot_be_serialized():
  with pytest.raises(errors.SerializationError, match="dtype object"):
    msgpack_serialize({"x": np.array([None, 1], dtype=object)})


def test_integer_out_of_range_cannot_be_serialized():
  with pytest.raises(errors.SerializationError):
    msgpack_serialize({"x": 2**70})


# ---------------------------------------------------------- decoding hostile bytes


@pytest.mark.parametrize(
  "data, match",
  [
    (array_payload([1], "object", b"\x00" * 8), "dtype 'object'"),
    (array_payload([1], "O", b"\x00" * 8), "dtype 'O'"),
    (array_payload([1], "V8", b"\x00" * 8), "dtype 'V8'"),
    (array_payload([1], "<U1", b"\x00" * 4), "dtype '<U1'"),
    (array_payload([1], 7, b"\x00" * 4), "dtype 7"),
    (array_payload([3], "float32", b"\x00" * 11), "should hold 12 bytes, found 11"),
    (array_payload([3], "float32", b"\x00" * 16), "should hold 12 bytes, found 16"),
    (array_payload([-1], "float32", b"\x00" * 4), "Invalid array shape"),
    (array_payload([True], "float32", b"\x00" * 4), "Invalid array shape"),
    (array_payload([1.0], "float32", b"\x00" * 4), "Invalid array shape"),
    (array_payload(3, "float32", b"\x00" * 12), "Invalid array shape"),
    (array_payload([1], "float32", "text"), "found str"),
    (packed({"x": ext(3, "object", b"\x00" * 8)}), "dtype 'object'"),
    (packed({"x": ext(3, "float32", b"\x00")}), "Invalid NumPy scalar"),
    (packed({"x": msgpack.ExtType(1, b"\xc1")}), "Malformed msgpack extension 1"),
    (packed({"x": ext(1, [1], "float32")}), "Malformed msgpack extension 1"),
    (packed({"x": ext(2, "a", "b")}), "Malformed msgpack extension 2"),
    (packed({"x": msgpack.ExtType(9, b"")}), "Unknown msgpack extension type 9"),
    (packed({"x": msgpack.Timestamp(3, 0)}), "timestamp"),  # found by fuzz_serialization
    (packed([msgpack.Timestamp(0, 5)]), "timestamp"),
    (bytes.fromhex("9a009a2d000000e0d6ffffffffffffff0000000000f400000300"), "timestamp"),
    (packed({"__msgpack_chunked_array__": True, "shape": [-2, -3], "chunks": {}}), "shape"),
    (packed({"__msgpack_chunked_array__": True, "shape": [2], "chunks": {"0": 1}}), "chunked"),
    (packed({"__msgpack_chunked_array__": True, "shape": [2], "chunks": []}), "chunked"),
    (packed({"__msgpack_chunked_array__": True, "shape": [5],
             "chunks": {"0": ext(1, [2], "int8", b"\x00\x00")}}), "holds 2 elements"),
    (b"\x91" * 1000 + b"\xc0", "not valid msgpack"),  # nesting deeper than Python recursion
    (b"\x91" * 5000 + b"\xc0", "not valid msgpack"),
    (b"", "not valid msgpack"),
    (VALID + b"\x00", "not valid msgpack"),
  ],
)
def test_crafted_payloads_raise_serialization_error(data, match):
  with pytest.raises(errors.SerializationError, match=match):
    msgpack_restore(data)


def test_input_that_is_not_bytes():
  with pytest.raises(errors.SerializationError, match="expects bytes, got str"):
    msgpack_restore("abc")


def test_bytearray_and_memoryview_are_accepted():
  assert msgpack_restore(bytearray(VALID))["w"].shape == (2, 3)
  assert msgpack_restore(memoryview(VALID))["layers"]["0"]["b"] == 3


def test_every_truncation_of_a_valid_payload_raises_serialization_error():
  for n in range(len(VALID)):
    with pytest.raises(errors.SerializationError):
      msgpack_restore(VALID[:n])


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_serialization_error(data):
  try:
    msgpack_restore(data)
  except errors.SerializationError:
    pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.integers(0, 255))
def test_corrupted_byte_decodes_or_raises_serialization_error(index, byte):
  data = bytearray(VALID)
  data[index] = byte
  try:
    out = msgpack_restore(bytes(data))
  except errors.SerializationError:
    return
  arrays = [x for x in jax.tree.leaves(out) if isinstance(x, np.ndarray)]
  assert all(x.dtype != object for x in arrays)
