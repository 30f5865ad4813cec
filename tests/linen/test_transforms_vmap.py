"""nn.vmap against jax.vmap on explicit parameter pytrees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flaxen.linen as nn
from flaxen import errors


def assert_trees_close(a, b, tol=1e-5):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


Ensemble = nn.vmap(nn.Dense, variable_axes={"params": 0}, split_rngs={"params": True},
                   in_axes=None, out_axes=0, axis_size=4)


def dense_ref(p, x):
  return x @ p["kernel"] + p["bias"]


def test_ensemble_of_dense_layers_matches_jax_vmap():
  x = jax.random.normal(jax.random.key(1), (2, 3))
  variables = Ensemble(5).init(jax.random.key(0), x)
  params = variables["params"]
  assert jax.tree.map(jnp.shape, params) == {"kernel": (4, 3, 5), "bias": (4, 5)}
  k = params["kernel"]
  assert all(not np.allclose(k[i], k[j]) for i in range(4) for j in range(i + 1, 4))

  ref = lambda p: jax.vmap(dense_ref, in_axes=(0, None))(p, x)
  y = Ensemble(5).apply(variables, x)
  np.testing.assert_allclose(y, ref(params), rtol=1e-6)
  loss = lambda p: jnp.sum(jnp.tanh(Ensemble(5).apply({"params": p}, x)))
  assert_trees_close(jax.grad(loss)(params), jax.grad(lambda p: jnp.sum(jnp.tanh(ref(p))))(params))


def test_transformed_class_is_named_after_the_transform():
  class Outer(nn.Module):
    @nn.compact
    def __call__(self, x):
      return Ensemble(2)(x)

  variables = Outer().init(jax.random.key(0), jnp.ones(3))
  assert list(variables["params"]) == ["VmapDense_0"]


def test_broadcast_params_are_shared_across_the_batch():
  Shared = nn.vmap(nn.Dense, in_axes=0, out_axes=0)  # params omitted from variable_axes
  x = jax.random.normal(jax.random.key(1), (6, 3))
  variables = Shared(2).init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, variables["params"]) == {"kernel": (3, 2), "bias": (2,)}
  y = Shared(2).apply(variables, x)
  np.testing.assert_allclose(y, dense_ref(variables["params"], x), rtol=1e-6)
  grads = jax.grad(lambda p: jnp.sum(Shared(2).apply({"params": p}, x) ** 2))(variables["params"])
  ref = jax.grad(lambda p: jnp.sum(dense_ref(p, x) ** 2))(variables["params"])
  assert_trees_close(grads, ref)


class Noise(nn.Module):
  @nn.compact
  def __call__(self, x):
    return x + jax.random.normal(self.make_rng("noise"), x.shape)


def test_split_rng_streams_differ_per_slice_unsplit_are_equal_and_runs_are_deterministic():
  x = jnp.zeros((3, 2))
  Split = nn.vmap(Noise, split_rngs={"noise": True})
  Same = nn.vmap(Noise, split_rngs={"noise": False})
  rngs = {"noise": jax.random.key(7)}
  split = Split().apply({}, x, rngs=rngs)
  assert not np.allclose(split[0], split[1])
  same = Same().apply({}, x, rngs=rngs)
  np.testing.assert_array_equal(same[0], same[1])
  np.testing.assert_array_equal(split, Split().apply({}, x, rngs=rngs))


class Counter(nn.Module):
  @nn.compact
  def __call__(self, x):
    count = self.variable("batch_stats", "count", jnp.zeros, ())
    total = self.variable("batch_stats", "total", jnp.zeros, x.shape[-1:])
    if not self.is_initializing():
      count.value += 1
      total.value += x
    return x


def test_batch_stats_updated_inside_vmap_are_returned():
  V = nn.vmap(Counter, variable_axes={"batch_stats": 0}, axis_size=3)
  x = jnp.arange(6.0).reshape(3, 2)
  variables = V().init(jax.random.key(0), x)
  assert variables["batch_stats"]["total"].shape == (3, 2)
  _, updated = V().apply(variables, x, mutable=["batch_stats"])
  np.testing.assert_array_equal(updated["batch_stats"]["count"], [1.0, 1.0, 1.0])
  np.testing.assert_array_equal(updated["batch_stats"]["total"], x)


def test_writing_an_immutable_collection_inside_vmap_fails():
  V = nn.vmap(Counter, variable_axes={"batch_stats": 0})
  x = jnp.ones((3, 2))
  variables = V().init(jax.random.key(0), x)
  with pytest.raises(errors.ModifyScopeVariableError, match="batch_stats"):
    V().apply(variables, x)


def test_split_rngs_without_a_mapped_argument_needs_axis_size():
  V = nn.vmap(nn.Dense, variable_axes={"params": 0}, split_rngs={"params": True},
              in_axes=None)
  with pytest.raises(errors.TransformAxisSizeError, match="axis_size"):
    V(2).init(jax.random.key(0), jnp.ones(3))


def test_partitioned_metadata_gets_the_mapped_axis():
  Boxed = nn.vmap(
    nn.Dense, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None,
    axis_size=2, metadata_params={"partition_name": "ensemble"})
  layer = Boxed(3, kernel_init=nn.with_partitioning(nn.initializers.lecun_normal(),
                                                    ("in", "out")))
  variables = layer.init(jax.random.key(0), jnp.ones(4))
  kernel = variables["params"]["kernel"]
  assert isinstance(kernel, nn.Partitioned)
  assert kernel.names == ("ensemble", "in", "out") and kernel.value.shape == (2, 4, 3)
  y = layer.apply(variables, jnp.ones(4))
  assert y.shape == (2, 3)


def test_vmap_of_a_method_with_a_mapped_and_a_broadcast_argument():
  class Model(nn.Module):
    def __call__(self, x, scale):
      return nn.vmap(Model.body, in_axes=(0, None), variable_axes={"params": 0},
                     split_rngs={"params": True})(self, x, scale)

    @nn.compact
    def body(self, x, scale):
      return nn.Dense(2)(x) * scale

  x = jnp.ones((5, 3))
  variables = Model().init(jax.random.key(0), x, 2.0)
  p = variables["params"]["Dense_0"]
  assert p["kernel"].shape == (5, 3, 2)
  y = Model().apply(variables, x, 2.0)
  np.testing.assert_allclose(y, jax.vmap(dense_ref)(p, x) * 2.0, rtol=1e-6)


@settings(max_examples=5, deadline=None)
@given(batch=st.integers(1, 4), features=st.integers(1, 3), shared=st.booleans())
def test_property_vmapped_dense_matches_jax_vmap(batch, features, shared):
  axes = {} if shared else {"params": 0}
  V = nn.vmap(nn.Dense, variable_axes=axes, split_rngs={"params": not shared})
  x = jnp.arange(batch * 2, dtype=jnp.float32).reshape(batch, 2)
  variables = V(features).init(jax.random.key(0), x)
  p = variables["params"]
  expected = (batch,) * (not shared) + (2, features)
  assert p["kernel"].shape == expected
  ref = jax.vmap(dense_ref, in_axes=(None if shared else 0, 0))(p, x)
  np.testing.assert_allclose(V(features).apply(variables, x), ref, rtol=1e-5, atol=1e-5)
