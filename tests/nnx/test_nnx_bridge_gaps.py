"""Bridge paths the main bridge tests leave out: registration forms, rng conversion,
``mutable=False`` calls and ``bridge.lazy_init`` on a module holding a ``ToNNX``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors, nnx
from flaxen.nnx import bridge


def test_register_variable_name_as_decorator_and_older_spelling():
  @bridge.register_variable_name("gaps_counts")
  class Counts(nnx.Variable):
    pass

  assert bridge.variable_type_from_name("gaps_counts") is Counts
  assert bridge.variable_name_from_type(Counts) == "gaps_counts"

  class Other(nnx.Variable):
    pass

  with pytest.raises(errors.VariableNameConflictError, match="gaps_counts"):
    bridge.register_variable_name_type_pair("gaps_counts", Other)
  bridge.register_variable_name_type_pair("gaps_counts", Other, overwrite=True)
  assert bridge.variable_type_from_name("gaps_counts") is Other


def test_unregistered_names_and_types_without_registering():
  a = bridge.variable_type_from_name("gaps_unseen", allow_register=False)
  b = bridge.variable_type_from_name("gaps_unseen", allow_register=False)
  assert issubclass(a, nnx.Variable) and a.__name__ == "gaps_unseen"
  assert a is not b  # nothing was registered, so each call makes a new type

  class GapsStat(nnx.Variable):
    pass

  assert bridge.variable_name_from_type(GapsStat, allow_register=False) == "GapsStat"
  unregistered = bridge.variable_type_from_name("GapsStat", allow_register=False)
  assert unregistered is not GapsStat
  assert bridge.variable_name_from_type(GapsStat, allow_register=True) == "GapsStat"
  assert bridge.variable_type_from_name("GapsStat") is GapsStat  # registered just now


def test_linen_rngs_conversions():
  key = jax.random.key(3)
  assert bridge.linen_rngs(None) == {}
  assert bridge.linen_rngs({"dropout": key}) == {"dropout": key}
  assert bridge.linen_rngs(key) == {"params": key}
  keys = bridge.linen_rngs(nnx.Rngs(0))  # only 'default': it also serves 'params'
  assert sorted(keys) == ["default", "params"]
  assert not np.array_equal(jax.random.key_data(keys["default"]),
                            jax.random.key_data(keys["params"]))


class _Counter(nn.Module):
  @nn.compact
  def __call__(self, x):
    count = self.variable("counter", "n", lambda: jnp.zeros((), jnp.int32))
    if self.is_mutable_collection("counter"):
      count.value += 1
    return nn.Dense(2)(x)


def test_call_with_mutable_false_returns_output_and_keeps_state():
  model = bridge.ToNNX(_Counter(), rngs=nnx.Rngs(0))
  x = jnp.ones((1, 3))
  y = model(x)  # first call initializes (n=1 from init) and counts once more
  assert int(model.n.value) == 2
  y_frozen = model(x, mutable=False)
  np.testing.assert_allclose(y_frozen, y)
  assert int(model.n.value) == 2


def test_call_with_explicit_key_overrides_module_rngs():
  class Noisy(nn.Module):
    @nn.compact
    def __call__(self, x):
      return x + jax.random.normal(self.make_rng("noise"), x.shape)

  rngs = nnx.Rngs(0)
  model = bridge.ToNNX(Noisy(), rngs=rngs).lazy_init(jnp.zeros(2))
  drawn = int(rngs.default.count.value)
  y1 = model(jnp.zeros(2), rngs={"noise": jax.random.key(7)})
  y2 = model(jnp.zeros(2), rngs={"noise": jax.random.key(7)})
  y3 = model(jnp.zeros(2), rngs={"noise": jax.random.key(8)})
  np.testing.assert_array_equal(y1, y2)  # the given key, not the module's streams
  assert not np.allclose(y1, y3)
  assert int(rngs.default.count.value) == drawn  # the module's streams were not drawn
  model(jnp.zeros(2))
  assert int(rngs.default.count.value) > drawn


def test_lazy_init_runs_a_module_holding_to_nnx_once():
  class Outer(nnx.Module):
    def __init__(self):
      self.inner = bridge.ToNNX(nn.Dense(4), rngs=nnx.Rngs(1))

    def __call__(self, x):
      return self.inner(x)

  outer = bridge.lazy_init(Outer(), jnp.ones((1, 3)))
  assert outer.inner.kernel.value.shape == (3, 4)
  assert isinstance(outer.inner.bias, nnx.Param)
