"""flaxen.typing's helper classes and predicates (Flax's names)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import typing as ft


def test_size_bytes_counts_array_leaves():
  tree = {"w": jnp.ones((3, 4), jnp.bfloat16), "n": 3, "s": jax.ShapeDtypeStruct((5,), jnp.int32)}
  assert ft.SizeBytes.from_any(tree) == ft.SizeBytes(12 + 5, 12 * 2 + 5 * 4)
  assert ft.SizeBytes.from_array(np.zeros((2, 2), np.float64)) == ft.SizeBytes(4, 32)
  assert ft.SizeBytes(1, 4) + ft.SizeBytes(2, 8) - ft.SizeBytes(1, 4) == ft.SizeBytes(2, 8)


def test_hashable_mapping_is_a_static_value():
  m = ft.HashableMapping({"a": 1, "b": (2, 3)})
  assert m == ft.HashableMapping({"b": (2, 3), "a": 1}) and len(m) == 2 and "a" in m
  assert hash(m) == hash(ft.HashableMapping({"b": (2, 3), "a": 1}))
  assert dict(m.update({"a": 5})) == {"a": 5, "b": (2, 3)} and m["a"] == 1
  g = jax.jit(lambda x, s: x * s["a"], static_argnums=1)
  assert g(2.0, m) == 2.0 and g(2.0, ft.HashableMapping({"a": 1, "b": (2, 3)})) == 2.0


def test_predicates_and_markers():
  assert ft.has_shape_dtype(jnp.ones(2)) and ft.has_shape_dtype(jax.ShapeDtypeStruct((), "f4"))
  assert not ft.has_shape_dtype(3.0)
  assert ft.is_key_like("a") and ft.is_key_like(1)
  assert repr(ft.MISSING) == "MISSING" and isinstance(ft.MISSING, ft.Missing)
  assert ft.In(0).axis == 0 and ft.Out(None).axis is None
  with pytest.raises(dataclasses.FrozenInstanceError):
    ft.In(0).axis = 1  # type: ignore[misc]


def test_pytree_deque_flattens_like_a_list():
  d = ft.PytreeDeque([1.0, 2.0])
  out = jax.tree.map(lambda x: x * 10, d)
  assert isinstance(out, ft.PytreeDeque) and list(out) == [10.0, 20.0]
