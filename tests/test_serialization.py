"""flaxen.serialization: state dicts, restore into targets, msgpack bytes, mismatch errors."""

import collections
from collections import namedtuple
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import errors, serialization, struct

Pair = namedtuple("Pair", ["first", "second"])


class Layer(struct.PyTreeNode):
  w: Any
  b: Any
  act: str = struct.field(pytree_node=False, default="relu")


class Net(struct.PyTreeNode):
  layers: list
  head: Any = None


def make_net(scale=1.0, n=2):
  return Net(
    [Layer(jnp.full((2, 3), scale), jnp.zeros(3)) for _ in range(n)],
    head={"out": np.arange(4, dtype=np.int32), "pair": Pair(1.5, np.float32(2))},
  )


JAX_DTYPES = [
  np.bool_, np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32, np.float16,
  np.float32, np.complex64, jnp.bfloat16, jnp.float8_e4m3fn, jnp.float8_e5m2,
  jnp.float8_e4m3b11fnuz, jnp.float8_e4m3fnuz, jnp.float8_e5m2fnuz, jnp.int4, jnp.uint4,
]
JAX_DTYPES += [
  getattr(jnp, n) for n in ("float8_e3m4", "float8_e4m3", "float8_e8m0fnu", "float4_e2m1fn",
                            "int2", "uint2") if hasattr(jnp, n)
]
NUMPY_ONLY_DTYPES = [np.int64, np.uint64, np.float64, np.complex128] + [
  getattr(ml_dtypes, n) for n in ("float6_e2m3fn", "float6_e3m2fn") if hasattr(ml_dtypes, n)
]


def assert_same(a, b):
  la, ta = jax.tree.flatten(a)
  lb, tb = jax.tree.flatten(b)
  assert ta == tb
  for x, y in zip(la, lb, strict=True):
    arrays = (np.ndarray, jax.Array)  # a restored JAX array comes back as a NumPy array
    assert type(x) is type(y) or (isinstance(x, arrays) and isinstance(y, arrays))
    if hasattr(x, "dtype"):
      assert np.dtype(x.dtype) == np.dtype(y.dtype) and np.shape(x) == np.shape(y)
      assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
    else:
      assert x == y


# -------------------------------------------------------------------- state dicts


def test_state_dict_of_struct_keeps_data_fields_only():
  state = serialization.to_state_dict(Layer(np.ones(2), np.zeros(2), act="tanh"))
  assert set(state) == {"w", "b"}
  assert serialization.to_state_dict(Net([1, 2])) == {"layers": {"0": 1, "1": 2}, "head": None}


def test_state_dict_of_containers():
  state = serialization.to_state_dict({"a": [1, (2, 3)], "p": Pair(4, None), 5: "x"})
  assert state == {"a": {"0": 1, "1": {"0": 2, "1": 3}}, "p": {"first": 4, "second": None},
                   "5": "x"}


def test_from_state_dict_restores_types_and_static_fields():
  target = make_net()
  restored = serialization.from_state_dict(target, serialization.to_state_dict(make_net(3.0)))
  assert isinstance(restored.layers, list) and isinstance(restored.head["pair"], Pair)
  assert restored.layers[1].act == "relu"
  np.testing.assert_array_equal(restored.layers[0].w, np.full((2, 3), 3.0))


def test_tuple_and_namedtuple_keep_their_type():
  target = {"t": (1, 2), "p": Pair(1, 2)}
  out = serialization.from_state_dict(target, {"t": {"0": 5, "1": 6}, "p": {"first": 7,
                                                                             "second": 8}})
  assert out == {"t": (5, 6), "p": Pair(7, 8)} and type(out["p"]) is Pair


def test_register_serialization_state_custom_type():
  class Counter:
    def __init__(self, n):
      self.n = n

  serialization.register_serialization_state(
    Counter, lambda c: {"n": c.n}, lambda c, s: Counter(serialization.from_state_dict(c.n, s["n"]))
  )
  data = serialization.to_bytes({"c": Counter(np.int32(7))})
  out = serialization.from_bytes({"c": Counter(np.int32(0))}, data)
  assert isinstance(out["c"], Counter) and out["c"].n == 7 and out["c"].n.dtype == np.int32
  with pytest.raises(ValueError, match="Counter is already registered"):
    serialization.register_serialization_state(Counter, lambda c: {}, lambda c, s: c)
  serialization.register_serialization_state(Counter, lambda c: {}, lambda c, s: c, override=True)
  assert serialization.to_state_dict(Counter(1)) == {}


# ------------------------------------------------------------------------- bytes


def test_bytes_round_trip_of_nested_structure():
  out = serialization.from_bytes(make_net(), serialization.to_bytes(make_net(2.0)))
  expected = make_net(2.0)
  assert_same(out, expected)
  assert out.head["pair"].first == 1.5 and type(out.head["pair"].second) is np.float32


@pytest.mark.parametrize("dtype", JAX_DTYPES, ids=lambda d: np.dtype(d).name)
def test_jax_arrays_of_every_dtype_round_trip(dtype):
  x = jnp.arange(6).reshape(2, 3).astype(dtype)
  target = {"x": jnp.zeros((2, 3), dtype), "s": jnp.zeros((), dtype)}
  out = serialization.from_bytes(target, serialization.to_bytes({"x": x, "s": x[1, 1]}))
  assert out["x"].dtype == np.dtype(dtype) and out["x"].shape == (2, 3)
  np.testing.assert_array_equal(out["x"].view(np.uint8), np.asarray(x).view(np.uint8))
  assert out["s"].shape == () and out["s"].dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", JAX_DTYPES + NUMPY_ONLY_DTYPES, ids=lambda d: np.dtype(d).name)
def test_numpy_arrays_and_scalars_of_every_dtype_round_trip(dtype):
  x = np.arange(5).astype(dtype)
  value = {"array": x, "scalar": x[3], "empty": np.zeros((0, 2), dtype)}
  out = serialization.msgpack_restore(serialization.msgpack_serialize(value))
  assert_same(out, value)
  assert type(out["scalar"]) is type(x[3])


def test_python_scalars_round_trip():
  value = {"i": 3, "f": 2.5, "c": 1 + 2j, "b": True, "n": None, "s": "text", "big": -(2**63)}
  out = serialization.from_bytes(value, serialization.to_bytes(value))
  assert out == value
  assert [type(out[k]) for k in "ifcb"] == [int, float, complex, bool]


def test_numpy_float64_scalar_keeps_its_dtype():
  out = serialization.msgpack_restore(serialization.msgpack_serialize({"x": np.float64(0.1)}))
  assert type(out["x"]) is np.float64 and out["x"] == 0.1


# --------------------------------------------------------------------- mismatches


def restore_error(target, saved) -> errors.StateMismatchError:
  with pytest.raises(errors.StateMismatchError) as info:
    serialization.from_bytes(target, serialization.to_bytes(saved))
  assert isinstance(info.value, errors.SerializationError) and isinstance(info.value, ValueError)
  return info.value


def test_a_leaf_takes_the_saved_value_whatever_its_shape():
  # As in Flax: only containers are matched; a leaf of the target is replaced by what was saved
  saved = make_net()
  target = saved.replace(layers=[saved.layers[0], saved.layers[1].replace(w=jnp.ones((3, 3)))])
  out = serialization.from_bytes(target, serialization.to_bytes(saved))
  assert out.layers[1].w.shape == (2, 3)
  np.testing.assert_array_equal(out.layers[1].w, saved.layers[1].w)


def test_dtype_may_differ_and_is_restored_as_saved():
  # Flax restores float64 NumPy state into float32 params unchanged; so does flaxen
  out = serialization.from_state_dict({"w": np.zeros(2, np.float32)}, {"w": np.ones(2)})
  assert out["w"].dtype == np.float64 and out["w"].tolist() == [1.0, 1.0]


def test_missing_key_names_path():
  e = restore_error({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 2}})
  assert e.path == "b/d" and "'d'" in str(e) and "found nothing" in str(e)


def test_extra_dict_keys_are_dropped():
  # As in Flax: a target dict restores the subset of a checkpoint it names
  out = serialization.from_state_dict({"a": 1, "b": {"c": 2}}, {"a": 5, "b": {"c": 6, "x": 0},
                                                                "zz": np.ones(2)})
  assert out == {"a": 5, "b": {"c": 6}}


def test_extra_struct_field_names_path():
  # struct dataclasses stay strict, as Flax's are ("Unknown field(s)")
  e = restore_error_state(Layer(np.ones(1), np.ones(1)),
                          {"w": np.ones(1), "b": np.ones(1), "zz": np.ones(2)})
  assert e.path == "zz" and "no entry" in str(e) and "shape (2,)" in str(e)


def test_saved_none_is_restored_as_none():
  # Flax returns a saved leaf as is, None included (an optional value left unset)
  out = serialization.from_state_dict({"a": 1.5, "w": np.zeros(2)}, {"a": None, "w": None})
  assert out == {"a": None, "w": None}
  data = serialization.to_bytes({"a": None})
  assert serialization.from_bytes({"a": np.zeros(2)}, data) == {"a": None}


def test_missing_struct_field_names_class():
  e = restore_error(Layer(np.ones(1), np.ones(1)), {"w": np.ones(1)})
  assert e.path == "b" and "Layer" in str(e)


def test_list_length_mismatch():
  e = restore_error(make_net(n=2), make_net(n=3))
  assert e.path == "layers" and "list of length 2" in str(e) and "3 entries" in str(e)


def test_leaf_where_subtree_expected_and_back():
  # a container of the target needs a container; a leaf takes any saved value (as in Flax)
  e = restore_error({"a": {"b": 1}}, {"a": 5})
  assert e.path == "a" and "a dict for dict" in str(e)
  assert serialization.from_state_dict({"a": np.zeros(2)}, {"a": {"b": 1}}) == {"a": {"b": 1}}
  assert serialization.from_state_dict({"a": np.zeros(2)}, {"a": 1}) == {"a": 1}
  assert serialization.from_state_dict({"a": "relu"}, {"a": [1]}) == {"a": [1]}


def test_current_path_inside_a_custom_restore():
  seen = []

  class Probe:
    pass

  serialization.register_serialization_state(
    Probe, lambda p: 0, lambda p, s: seen.append(serialization.current_path()) or p
  )
  serialization.from_state_dict({"x": [Probe()]}, {"x": {"0": 0}})
  assert seen == ["x/0"]
  assert serialization.current_path() == ""  # popped after the restore


def test_path_is_reset_after_an_error():
  with pytest.raises(errors.StateMismatchError):
    serialization.from_state_dict({"a": {"b": np.zeros(1)}}, {"a": {"c": np.zeros(2)}})
  assert serialization.current_path() == ""


def test_none_target_accepts_whatever_was_saved():
  assert serialization.from_state_dict(None, {"a": 1}) == {"a": 1}


def test_to_bytes_rejects_unregistered_objects():
  with pytest.raises(errors.SerializationError, match="type object"):
    serialization.to_bytes({"x": object()})


def test_from_bytes_on_garbage_raises_serialization_error():
  with pytest.raises(errors.SerializationError):
    serialization.from_bytes({"a": 1}, b"\xc1\x00")


def test_static_fields_come_from_the_target_not_the_bytes():
  saved = Layer(np.ones(2, np.float32), np.zeros(2, np.float32), act="tanh")
  target = Layer(np.zeros(2, np.float32), np.zeros(2, np.float32), act="gelu")
  restored = serialization.from_bytes(target, serialization.to_bytes(saved))
  assert restored.act == "gelu" and restored.w.tolist() == [1.0, 1.0]


def test_state_with_non_string_keys_is_a_mismatch():
  assert serialization.from_state_dict({"a": 1}, {"a": 1, 5: 2}) == {"a": 1}  # extra: dropped
  e = restore_error_state([1], {0: 1})
  assert e.path == "0" and "key '0'" in str(e)


def test_long_key_lists_are_shortened():
  e = restore_error_state({str(i): i for i in range(20)}, 5)
  assert "'7', ...]" in str(e) and "'19'" not in str(e)


def restore_error_state(target, state) -> errors.StateMismatchError:
  with pytest.raises(errors.StateMismatchError) as info:
    serialization.from_state_dict(target, state)
  return info.value


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_damaged_bytes_raise_only_serialization_errors(data):
  payload = serialization.to_bytes(make_net(2.0))
  cut = data.draw(st.integers(0, len(payload)))
  index = data.draw(st.integers(0, len(payload) - 1))
  damaged = bytearray(payload[:cut])
  if index < cut:
    damaged[index] = data.draw(st.integers(0, 255))
  damaged += data.draw(st.binary(max_size=4))
  try:
    out = serialization.from_bytes(make_net(), bytes(damaged))
  except errors.SerializationError:
    return
  assert jax.tree.structure(out) == jax.tree.structure(make_net())


# ------------------------------------------------- Flax's extra dtypes, names, formats


@pytest.mark.parametrize(
  "dtype", [np.longdouble, np.clongdouble, "timedelta64", "timedelta64[ms]", "datetime64[D]",
            "datetime64[10s]", ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn]
)
def test_extended_numpy_dtypes_round_trip(dtype):
  x = np.arange(6).reshape(2, 3).astype(dtype)
  out = serialization.msgpack_restore(serialization.msgpack_serialize({"a": x, "s": x[1, 2]}))
  assert out["a"].dtype == x.dtype and out["s"].dtype == x.dtype
  np.testing.assert_array_equal(out["a"], x)
  assert out["s"] == x[1, 2] and np.ndim(out["s"]) == 0


def test_max_chunk_size_is_read_at_each_call(monkeypatch):
  monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 10 * 8)
  x = np.arange(35.0).reshape(5, 7)
  data = serialization.to_bytes({"x": x})
  raw = msgpack.unpackb(data, raw=False)
  # Flax's layout: the shape as a dict of dims, chunks of MAX_CHUNK_SIZE // itemsize items
  assert raw["x"]["shape"] == {"0": 5, "1": 7} and len(raw["x"]["chunks"]) == 4
  np.testing.assert_array_equal(serialization.from_bytes({"x": x * 0}, data)["x"], x)


def test_flax_scalar_layout_is_read():
  # Flax writes a NumPy scalar as extension 3 holding (shape (), dtype name, bytes)
  payload = msgpack.packb(((), "int16", np.int16(-3).tobytes()), use_bin_type=True)
  data = msgpack.packb({"s": msgpack.ExtType(3, payload)}, use_bin_type=True)
  out = serialization.msgpack_restore(data)["s"]
  assert out == -3 and out.dtype == np.int16


def test_is_serializable():
  assert serialization.is_serializable({"a": 1}) and serialization.is_serializable(list)
  assert serialization.is_serializable(make_net())  # a struct dataclass registers itself
  assert not serialization.is_serializable(np.ones(2)) and not serialization.is_serializable(int)


def test_legacy_namedtuple_state_restores():
  Foo = collections.namedtuple("Foo", "a b")
  legacy = {"name": "Foo", "fields": {"0": "a", "1": "b"}, "values": {"0": 1, "1": 2}}
  out = serialization.from_state_dict(Foo(0, 0), legacy)
  assert type(out) is Foo and out == Foo(1, 2)
  Odd = collections.namedtuple("Odd", "name fields values")  # its own fields win
  assert serialization.from_state_dict(Odd(0, 0, 0), {"name": 1, "fields": 2, "values": 3}) == (
    Odd(1, 2, 3))


def test_partial_state_is_its_arguments():
  add = jax.tree_util.Partial(jnp.add, np.float32(1), y=np.float32(2))
  state = serialization.to_state_dict(add)
  assert state == {"args": {"0": np.float32(1)}, "keywords": {"y": np.float32(2)}}
  back = serialization.from_bytes(add, serialization.to_bytes(add.__class__(jnp.add, 5, y=6)))
  assert back.func is jnp.add and back.args == (5,) and back.keywords == {"y": 6}
