"""nnx.vmap and nnx.split_rngs against the same computation with jax.vmap on plain arrays."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import errors, nnx

X = jnp.asarray(np.random.RandomState(0).randn(5, 2), jnp.float32)


@nnx.split_rngs(splits=4)
@nnx.vmap(in_axes=(0,), out_axes=0)
def create(rngs):
  return nnx.Linear(2, 3, rngs=rngs)


def _member_keys(seed, n):
  # split_rngs draws one key from the stream and splits it
  return jax.random.split(jax.random.fold_in(jax.random.key(seed), 0), n)


def test_ensemble_members_match_separately_created_layers():
  rngs = nnx.Rngs(0)
  ensemble = create(rngs)
  assert ensemble.kernel.value.shape == (4, 2, 3)
  assert ensemble.bias.value.shape == (4, 3)
  refs = [nnx.Linear(2, 3, rngs=nnx.Rngs(k)) for k in _member_keys(0, 4)]
  np.testing.assert_allclose(ensemble.kernel.value, jnp.stack([r.kernel.value for r in refs]))
  assert len({float(k[0, 0]) for k in ensemble.kernel.value}) == 4  # members differ
  # split_rngs restored the stream, advanced by the one draw it made
  assert rngs.default.key.value.shape == ()
  assert int(rngs.default.count.value) == 1


def test_ensemble_is_deterministic():
  a, b = create(nnx.Rngs(0)), create(nnx.Rngs(0))
  np.testing.assert_array_equal(a.kernel.value, b.kernel.value)
  c = create(nnx.Rngs(1))
  assert not np.allclose(a.kernel.value, c.kernel.value)


def test_apply_with_state_axes_and_broadcast_input():
  ensemble = create(nnx.Rngs(0))
  state_axes = nnx.StateAxes({nnx.Param: 0, ...: None})

  @nnx.vmap(in_axes=(state_axes, None), out_axes=0)
  def forward(model, x):
    return model(x)

  y = forward(ensemble, X)
  ref = jax.vmap(lambda k, b: X @ k + b)(ensemble.kernel.value, ensemble.bias.value)
  assert y.shape == (4, 5, 3)
  np.testing.assert_allclose(y, ref, rtol=1e-6)


def test_gradient_through_vmap_matches_jax():
  ensemble = create(nnx.Rngs(0))

  def loss(model):
    return (nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(model, X) ** 2).mean()

  grads = nnx.grad(loss)(ensemble)
  ref = jax.grad(lambda k, b: (jax.vmap(lambda k, b: X @ k + b)(k, b) ** 2).mean(),
                 argnums=(0, 1))(ensemble.kernel.value, ensemble.bias.value)
  np.testing.assert_allclose(grads.kernel.value, ref[0], rtol=1e-5)
  np.testing.assert_allclose(grads.bias.value, ref[1], rtol=1e-5)


class Counter(nnx.Module):
  def __init__(self, n):
    self.total = nnx.BatchStat(jnp.zeros((n,)))
    self.calls = nnx.Variable(jnp.array(0))


def test_batched_state_updates_come_back_along_their_axis():
  m = Counter(3)
  axes = nnx.StateAxes({nnx.BatchStat: 0, ...: None})

  @functools.partial(nnx.vmap, in_axes=(axes, 0))
  def step(m, x):
    m.total.value = m.total.value + x.sum()
    m.calls.value = m.calls.value + 1  # broadcast, updated with an unbatched value
    return x * 2

  xs = jnp.arange(6.0).reshape(3, 2)
  out = step(m, xs)
  np.testing.assert_allclose(out, xs * 2)
  np.testing.assert_allclose(m.total.value, jax.vmap(jnp.sum)(xs))
  assert int(m.calls.value) == 1


def test_nonzero_axes_in_and_out():
  kernels = jnp.asarray(np.random.RandomState(1).randn(2, 3, 4), jnp.float32)  # axis 2 maps
  w = nnx.Param(kernels)

  @nnx.vmap(in_axes=(2, None), out_axes=1)
  def apply(w, x):
    return x @ w.value

  x = jnp.ones((5, 2))
  ref = jax.vmap(lambda k: x @ k, in_axes=2, out_axes=1)(kernels)
  np.testing.assert_allclose(apply(w, x), ref, rtol=1e-6)


def test_returned_module_stacked_along_out_axes():
  @nnx.split_rngs(splits=3)
  @nnx.vmap(in_axes=0, out_axes=1)
  def make(rngs):
    return nnx.Linear(2, 4, rngs=rngs)

  m = make(nnx.Rngs(0))
  assert m.kernel.value.shape == (2, 3, 4)
  assert m.bias.value.shape == (4, 3)


def test_vmap_inside_jit_updates_caller():
  ensemble = create(nnx.Rngs(0))

  @nnx.jit
  def step(model, x):
    def loss(model):
      return (nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(model, x) ** 2).mean()
    grads = nnx.grad(loss)(model)
    nnx.update(model, jax.tree.map(lambda p, g: p - 0.1 * g, nnx.state(model, nnx.Param),
                                   grads))

  kernel, bias = ensemble.kernel.value, ensemble.bias.value
  ref = jax.grad(lambda k, b: (jax.vmap(lambda k, b: X @ k + b)(k, b) ** 2).mean(),
                 argnums=(0, 1))(kernel, bias)
  step(ensemble, X)
  np.testing.assert_allclose(ensemble.kernel.value, kernel - 0.1 * ref[0], rtol=1e-5)
  np.testing.assert_allclose(ensemble.bias.value, bias - 0.1 * ref[1], rtol=1e-5)


def test_jax_vmap_over_split_and_merge():
  ensemble = create(nnx.Rngs(0))
  graphdef, state = nnx.split(ensemble)  # the graphdef does not record shapes

  def apply(state):
    return nnx.merge(graphdef, state)(X)

  y = jax.vmap(apply)(state)
  ref = jax.vmap(lambda k, b: X @ k + b)(ensemble.kernel.value, ensemble.bias.value)
  np.testing.assert_allclose(y, ref, rtol=1e-6)


def test_split_rngs_context_manager_only_and_squeeze():
  rngs = nnx.Rngs(params=0, dropout=1)
  with nnx.split_rngs(rngs, splits=5, only="dropout"):
    assert rngs.dropout.key.value.shape == (5,)
    assert rngs.dropout.count.value.shape == (5,)
    assert rngs.params.key.value.shape == ()
  assert rngs.dropout.key.value.shape == ()
  backups = nnx.split_rngs(rngs, splits=5, squeeze=True)
  assert rngs.params.key.value.shape == () and int(rngs.params.count.value) == 0
  nnx.restore_rngs(backups)
  assert int(rngs.params.count.value) == 1


def test_dropout_keys_differ_per_member():
  rngs = nnx.Rngs(dropout=0)

  @nnx.split_rngs(splits=3, only="dropout")
  @nnx.vmap(in_axes=(0,), out_axes=0)
  def draw(rngs):
    return jax.random.uniform(rngs.dropout())

  a = draw(rngs)
  assert len(set(np.asarray(a).tolist())) == 3
  b = draw(rngs)  # the stream advanced: new keys
  assert not np.allclose(a, b)
  again = draw(nnx.Rngs(dropout=0))
  np.testing.assert_array_equal(a, again)


def test_unmatched_state_axes_names_the_variable():
  m = Counter(3)
  with pytest.raises(errors.UnmatchedStateAxesError, match="calls"):
    nnx.vmap(lambda m: None, in_axes=(nnx.StateAxes({nnx.BatchStat: 0}),))(m)


def test_carry_is_not_a_vmap_axis():
  with pytest.raises(errors.TransformAxesError, match="Carry"):
    nnx.vmap(lambda x: x, in_axes=nnx.Carry)(jnp.ones(3))


def test_axes_prefix_mismatch():
  with pytest.raises(errors.TransformAxesError, match="in_axes"):
    nnx.vmap(lambda x, y: x, in_axes=(0, 0, 0))(jnp.ones(3), jnp.ones(3))


def test_method_decorator_and_kwless_partial():
  class Block(nnx.Module):
    def __init__(self):
      self.w = nnx.Param(jnp.arange(3.0))

    @nnx.vmap(in_axes=(0, 0))
    def scaled(self, x):
      return self.w * x

  b = Block()
  np.testing.assert_allclose(b.scaled(jnp.ones(3) * 2), jnp.arange(3.0) * 2)


def test_returning_the_argument_and_keyword_arguments():
  m = Counter(4)
  axes = nnx.StateAxes({nnx.BatchStat: 0, ...: None})

  def f(m, x, *, y):
    m.total.value = m.total.value + y
    return m, x * y

  out, z = nnx.vmap(f, in_axes=(axes, 0), out_axes=(axes, 0))(m, jnp.ones(4),
                                                              y=jnp.arange(4.0))
  assert out is m
  np.testing.assert_allclose(m.total.value, jnp.arange(4.0))
  np.testing.assert_allclose(z, jnp.arange(4.0))


class Sharded(nnx.Module):
  def __init__(self, rngs):
    self.w = nnx.Param(jax.random.normal(rngs.params(), (2, 3)), sharding_names=("a", "b"))


def test_transform_metadata_names_the_mapped_axis():
  meta = {nnx.PARTITION_NAME: "layers"}

  @nnx.split_rngs(splits=4)
  @nnx.vmap(in_axes=0, out_axes=0, transform_metadata=meta)
  def make(rngs):
    return Sharded(rngs)

  m = make(nnx.Rngs(0))
  assert m.w.sharding_names == ("layers", "a", "b")
  seen = []
  nnx.vmap(lambda m: seen.append(m.w.sharding_names), in_axes=0, transform_metadata=meta)(m)
  assert seen == [("a", "b")]
  assert m.w.sharding_names == ("layers", "a", "b")


def test_batched_write_to_broadcast_variable_names_it():
  m = Counter(3)

  def f(m, x):
    m.calls.value = x

  with pytest.raises(errors.BroadcastStateUpdateError, match="calls"):
    nnx.vmap(f, in_axes=(None, 0))(m, jnp.arange(3))


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2), st.integers(0, 2), st.integers(1, 3))
def test_property_param_axes_match_jax_vmap(in_axis, out_axis, size):
  shape = [2, 3, 2]
  shape[in_axis] = size
  value = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape)
  w = nnx.Param(value)

  def f(w):
    w.value = w.value * 2
    return jnp.tanh(w.value).sum(0)

  out = nnx.vmap(f, in_axes=in_axis, out_axes=min(out_axis, 1))(w)
  ref = jax.vmap(lambda v: jnp.tanh(v * 2).sum(0), in_axes=in_axis, out_axes=min(out_axis, 1))(
    value)
  np.testing.assert_allclose(out, ref, rtol=1e-6)
  np.testing.assert_allclose(w.value, value * 2)  # the update came back along in_axis


def test_unsplit_rngs_error_suggests_split_rngs():
  with pytest.raises(errors.TransformAxesError, match="split_rngs"):
    nnx.vmap(lambda r: r(), in_axes=0)(nnx.Rngs(0))


def test_axis_size_mismatch_names_both_values():
  with pytest.raises(errors.TransformAxesError, match="Param at <root>.* 3|4.*Param"):
    nnx.vmap(lambda a, b: a, in_axes=(0, 0))(nnx.Param(jnp.ones(3)), jnp.ones(4))
