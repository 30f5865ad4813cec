"""nn.DenseGeneral checks ``axis`` against the input before reading its dims."""

import jax
import jax.numpy as jnp
import pytest

import flaxen.errors as errors
import flaxen.linen as nn


@pytest.mark.parametrize("shape, axis", [((), -1), ((3,), (-2, -1)), ((2, 3), (1, -1))])
def test_dense_general_bad_axis_raises_input_shape_error(shape, axis):
  with pytest.raises(errors.InputShapeError) as info:
    nn.DenseGeneral(4, axis=axis).init(jax.random.key(0), jnp.ones(shape))
  message = str(info.value)
  assert "DenseGeneral" in message and str(shape) in message and "Fix:" in message
