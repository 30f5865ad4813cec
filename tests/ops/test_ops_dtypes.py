import jax.numpy as jnp
import pytest

from flaxen import errors
from flaxen.ops.dtypes import canonicalize_dtype, promote_dtype


def test_promote_to_result_type_and_keep_none():
  x, w, none = promote_dtype(jnp.ones(2, jnp.bfloat16), jnp.ones(2, jnp.float32), None)
  assert x.dtype == w.dtype == jnp.float32
  assert none is None


def test_promote_to_explicit_dtype():
  x, w = promote_dtype(jnp.ones(2), jnp.ones(2), dtype=jnp.bfloat16)
  assert x.dtype == w.dtype == jnp.bfloat16


def test_integers_promote_to_float_when_inexact():
  assert canonicalize_dtype(jnp.ones(2, jnp.int32)) == jnp.float32
  assert canonicalize_dtype(jnp.ones(2, jnp.int32), inexact=False) == jnp.int32
  assert canonicalize_dtype(jnp.ones(2, jnp.bfloat16)) == jnp.bfloat16


def test_integer_dtype_request_is_an_error():
  with pytest.raises(errors.NonFloatingDtypeError, match="int32"):
    canonicalize_dtype(jnp.ones(2), dtype=jnp.int32)
  with pytest.raises(ValueError):
    promote_dtype(jnp.ones(2), dtype=jnp.int8)
