"""Issue #9, part 2: misuse of traverse_util, the FrozenDict helpers, serialization and the
linear layers raises a flaxen.errors class (also the builtin it replaces) naming where,
what was expected, what was found, and the fix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors, nnx, serialization, traverse_util
from flaxen.core import FrozenDict, copy, freeze, pop
from flaxen.ops import linear as linear_ops

CASES = []


def case(error: type, builtin: type, *texts: str):
  """Registers a case: calling it raises ``error`` (a ``builtin`` too) whose message holds
  every text and a fix."""
  def register(fn):
    CASES.append(pytest.param(fn, error, builtin, texts, id=fn.__name__))
    return fn
  return register


@case(errors.NotAMappingError, TypeError, "flatten_dict", "list", "Fix")
def flatten_a_list():
  traverse_util.flatten_dict([1, 2])


@case(errors.NotAMappingError, TypeError, "unflatten_dict", "tuple")
def unflatten_a_tuple():
  traverse_util.unflatten_dict((("a",), 1))


@case(errors.FlatKeyError, TypeError, "'a/b'", "sep=None", "sep='/'")
def unflatten_string_key_without_sep():
  traverse_util.unflatten_dict({"a/b": 1})


@case(errors.FlatKeyError, TypeError, "('a', 'b')", "sep='/'")
def unflatten_tuple_key_with_sep():
  traverse_util.unflatten_dict({("a", "b"): 1}, sep="/")


@case(errors.FlatKeyError, TypeError, "()", "non-empty")
def unflatten_empty_path():
  traverse_util.unflatten_dict({(): 1})


@case(errors.PathConflictError, ValueError, "('a',) is a leaf", "('a', 'b')")
def unflatten_leaf_then_longer_path():
  traverse_util.unflatten_dict({("a",): 1, ("a", "b"): 2})


@case(errors.PathConflictError, ValueError, "('a',) is a leaf", "('a', 'b', 'c')")
def unflatten_longer_path_then_leaf():
  traverse_util.unflatten_dict({("a", "b", "c"): 2, ("a",): 1})


@case(errors.NotAMappingError, TypeError, "flaxen.core.copy", "list")
def copy_a_list():
  copy([("w", 1)], {"b": 2})


@case(errors.NotAMappingError, TypeError, "flaxen.core.pop", "ndarray")
def pop_an_array():
  pop(np.ones(3), "w")


@case(errors.DictKeyNotFoundError, KeyError, "flaxen.core.pop", "'batch_stats'", "'params'")
def pop_missing_key_of_dict():
  pop({"params": {}}, "batch_stats")


@case(errors.DictKeyNotFoundError, KeyError, "FrozenDict.pop", "'b'", "'w'")
def pop_missing_key_of_frozen_dict():
  freeze({"w": 1}).pop("b")


class Counter:
  def __init__(self, n):
    self.n = n


@case(errors.SerializationHandlerExistsError, ValueError, "Counter", "override=True")
def register_serialization_twice():
  to_state, from_state = (lambda c: {"n": c.n}), (lambda c, s: Counter(s["n"]))
  serialization.register_serialization_state(Counter, to_state, from_state, override=True)
  serialization.register_serialization_state(Counter, to_state, from_state)


@case(errors.AxisCountError, ValueError, "LinearGeneral", "axis=(-1,)", "in_features=(2, 3)")
def linear_general_axis_count():
  nnx.LinearGeneral((2, 3), 4, rngs=nnx.Rngs(0))


@case(errors.InputShapeError, ValueError, "Linear", "shape ()", "3 input feature")
def nnx_linear_scalar():
  nnx.Linear(3, 4, rngs=nnx.Rngs(0))(jnp.float32(1.0))


@case(errors.InputShapeError, ValueError, "LinearGeneral", "axis=(-1,)", "(3,)")
def nnx_linear_general_scalar():
  nnx.LinearGeneral(3, 4, rngs=nnx.Rngs(0))(jnp.float32(1.0))


@case(errors.InputShapeError, ValueError, "LinearGeneral", "axis=(-2, -1)", "(2, 3)", "(3,)")
def nnx_linear_general_missing_axis():
  nnx.LinearGeneral((2, 3), 4, axis=(-2, -1), rngs=nnx.Rngs(0))(jnp.ones(3))


@case(errors.InputShapeError, ValueError, "DenseGeneral (root module)", "axis=(0, 0)")
def linen_dense_general_axis_twice():
  nn.DenseGeneral(3, axis=(0, 0)).init(jax.random.key(0), jnp.ones((2, 3)))


@case(errors.InputShapeError, ValueError, "Einsum (inputs of 'bi')", "2 dim", "shape ()")
def nnx_einsum_scalar():
  nnx.Einsum("bi,io->bo", (3, 4), rngs=nnx.Rngs(0))(jnp.float32(1.0))


@case(errors.InputShapeError, ValueError, "Einsum (kernel of 'hio')", "3 dim", "(3, 4)")
def nnx_einsum_kernel_rank():
  nnx.Einsum("bi,hio->bho", (3, 4), rngs=nnx.Rngs(0))(jnp.ones((2, 3)))


@pytest.mark.parametrize("fn, error, builtin, texts", CASES)
def test_misuse_raises_a_named_error(fn, error, builtin, texts):
  with pytest.raises(error) as info:
    fn()
  assert isinstance(info.value, builtin) and isinstance(info.value, errors.FlaxenError)
  message = str(info.value)
  assert "Fix:" in message, message
  for text in texts:
    assert text in message, (text, message)


def test_correct_use_still_works():
  # The checks reject only misuse: the same calls with valid arguments behave as before.
  flat = {("a", "b"): 1, ("c",): traverse_util.empty_node}
  assert traverse_util.unflatten_dict(flat) == {"a": {"b": 1}, "c": {}}
  assert traverse_util.unflatten_dict({"a/b": 1}, sep="/") == {"a": {"b": 1}}
  rest, value = pop(freeze({"w": 1, "b": 2}), "b")
  assert isinstance(rest, FrozenDict) and dict(rest) == {"w": 1} and value == 2
  assert copy({"w": 1}, {"b": 2}) == {"w": 1, "b": 2}
  x, kernel = jnp.arange(6.0).reshape(2, 3), jnp.arange(12.0).reshape(3, 4)
  np.testing.assert_allclose(linear_ops.dense_general(x[None], kernel[None], axis=(-1,),
                                                      batch_dims=(0,))[0], x @ kernel)
  np.testing.assert_allclose(linear_ops.einsum("...i,io->...o", x, kernel), x @ kernel)
  layer = nnx.LinearGeneral((2, 3), 4, axis=(-2, -1), rngs=nnx.Rngs(0))
  y = layer(jnp.ones((5, 2, 3)))
  np.testing.assert_allclose(y, jnp.ones((5, 6)) @ layer.kernel.value.reshape(6, 4)
                             + layer.bias.value, rtol=1e-6)
