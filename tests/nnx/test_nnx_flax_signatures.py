"""Parameters Flax 0.12 names explicitly: with_metadata's hooks, Variable.__call__'s
keywords, List.append / insert, Sequential's rngs."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import nnx


def test_with_metadata_hooks_are_explicit_parameters():
  init = nnx.with_metadata(lambda: jnp.ones(2), on_get_value=lambda v, x: x * 2,
                           sharding_names=("a",))
  var = nnx.Param(init())
  np.testing.assert_array_equal(var.value, jnp.full(2, 2.0))  # the hook ran on read
  np.testing.assert_array_equal(var.get_raw_value(), jnp.ones(2))
  assert var.get_metadata("sharding_names") == ("a",)
  plain = nnx.Param(nnx.with_metadata(lambda: 1.0)())  # () hooks add no metadata
  assert "on_get_value" not in plain.get_metadata()


def test_variable_call_passes_keywords():
  v = nnx.Param(jnp.arange(3.0))
  assert v(index=1) == 1.0
  v(jnp.array(7.0), index=2)
  np.testing.assert_array_equal(v.value, jnp.array([0.0, 1.0, 7.0]))


def test_list_append_and_insert():
  layers = nnx.List([nnx.Param(1.0)])
  layers.append(nnx.Param(3.0))
  layers.insert(1, nnx.Param(2.0))
  assert [p.value for p in layers] == [1.0, 2.0, 3.0]
  assert nnx.state(layers)[1].value == 2.0


class _Noisy(nnx.Module):
  def __call__(self, x, *, rngs=None):
    return x + (0.0 if rngs is None else jax.random.normal(rngs.noise(), x.shape))


def test_sequential_passes_rngs_to_layers_that_take_them():
  model = nnx.Sequential(_Noisy(), lambda x: 2 * x, _Noisy())
  x = jnp.zeros(3)
  np.testing.assert_array_equal(model(x), x)  # no rngs: no noise
  out = model(x, rngs=nnx.Rngs(noise=0))
  keys = nnx.Rngs(noise=0)  # the same stream, drawn in the same order
  expected = 2 * jax.random.normal(keys.noise(), (3,)) + jax.random.normal(keys.noise(), (3,))
  np.testing.assert_allclose(out, expected, rtol=1e-6)  # float32 rounding only
