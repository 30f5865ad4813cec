"""Property tests: random nested pytrees survive bytes and JAX's flatten/unflatten unchanged.

Trees mix struct dataclasses (with static fields), dicts, lists, tuples, None, NumPy and JAX
arrays of random dtypes and shapes (random bit patterns, NaNs included), NumPy scalars and
Python scalars. "Unchanged" means the same tree structure (static fields included) and,
leaf by leaf, the same type, dtype, shape and bytes.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import serialization, struct


class Pair(struct.PyTreeNode):
  first: Any
  second: Any
  tag: str = struct.field(pytree_node=False, default="")


@struct.dataclass
class Single:
  value: Any
  mode: int = struct.field(pytree_node=False, default=0)


JAX_DTYPES = [
  np.bool_, np.int8, np.int16, np.int32, np.uint8, np.uint32, np.float16, np.float32,
  np.complex64, jnp.bfloat16, jnp.float8_e4m3fn, jnp.float8_e5m2, jnp.int4, jnp.uint4,
]
NUMPY_ONLY = ("float8_e8m0fnu", "float4_e2m1fn", "int2")
NUMPY_DTYPES = JAX_DTYPES + [np.int64, np.uint64, np.float64, np.complex128] + [
  getattr(ml_dtypes, n) for n in NUMPY_ONLY if hasattr(ml_dtypes, n)
]


@st.composite
def numpy_arrays(draw, dtypes=NUMPY_DTYPES):
  dtype = np.dtype(draw(st.sampled_from(dtypes)))
  shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
  size = math.prod(shape)
  if dtype == np.bool_:  # only 0 and 1 are valid bytes
    values = np.array(draw(st.lists(st.integers(0, 1), min_size=size, max_size=size)))
    return values.astype(dtype).reshape(shape)
  raw = draw(st.binary(min_size=size * dtype.itemsize, max_size=size * dtype.itemsize))
  return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


jax_arrays = numpy_arrays(JAX_DTYPES).map(jnp.asarray)
numpy_scalars = numpy_arrays().filter(lambda a: a.size > 0).map(lambda a: a.reshape(-1)[0])
python_scalars = (
  st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.booleans()
  | st.complex_numbers(allow_nan=False)
)
leaves = numpy_arrays() | jax_arrays | numpy_scalars | python_scalars | st.none()
keys = st.text("abxyz_0", min_size=1, max_size=4)


def containers(children):
  return (
    st.dictionaries(keys, children, max_size=3)
    | st.lists(children, max_size=3)
    | st.lists(children, max_size=3).map(tuple)
    | st.builds(Pair, children, children, tag=st.sampled_from(["", "a", "b"]))
    | st.builds(Single, children, mode=st.integers(-2, 2))
  )


trees = st.recursive(leaves, containers, max_leaves=10)


def is_array(x) -> bool:
  return isinstance(x, np.ndarray | jax.Array)


def leaf_signature(x):
  if is_array(x) or isinstance(x, np.generic):
    kind = "array" if is_array(x) else type(x)
    return kind, np.dtype(x.dtype), np.shape(x), np.asarray(x).tobytes()
  return type(x), repr(x)


def assert_same_tree(a, b):
  leaves_a, treedef_a = jax.tree.flatten(a)
  leaves_b, treedef_b = jax.tree.flatten(b)
  assert treedef_a == treedef_b  # includes static field values
  assert [leaf_signature(x) for x in leaves_a] == [leaf_signature(x) for x in leaves_b]


def zeros_like(tree):
  def zero(x):
    if is_array(x):
      return np.zeros(np.shape(x), x.dtype)
    if isinstance(x, np.generic):
      return np.zeros((), x.dtype)[()]
    return type(x)()

  return jax.tree.map(zero, tree)


@settings(max_examples=80, deadline=None)
@given(trees)
def test_bytes_round_trip(tree):
  restored = serialization.from_bytes(zeros_like(tree), serialization.to_bytes(tree))
  assert_same_tree(restored, tree)


@settings(max_examples=80, deadline=None)
@given(trees)
def test_state_dict_round_trip(tree):
  restored = serialization.from_state_dict(zeros_like(tree), serialization.to_state_dict(tree))
  assert_same_tree(restored, tree)


@settings(max_examples=80, deadline=None)
@given(trees)
def test_flatten_unflatten_round_trip(tree):
  leaves_, treedef = jax.tree.flatten(tree)
  rebuilt = jax.tree.unflatten(treedef, leaves_)
  assert_same_tree(rebuilt, tree)
  assert all(x is y for x, y in zip(jax.tree.leaves(rebuilt), leaves_, strict=True))


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(trees)
def test_bytes_round_trip_long(tree):
  restored = serialization.from_bytes(zeros_like(tree), serialization.to_bytes(tree))
  assert_same_tree(restored, tree)
