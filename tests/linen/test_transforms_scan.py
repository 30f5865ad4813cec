"""nn.scan and nn.remat_scan against jax.lax.scan on explicit parameter pytrees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors


def assert_trees_close(a, b, tol=1e-5):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


class Cell(nn.Module):
  """An LSTM-like cell: (h, c) carry, gates from Dense layers."""

  features: int

  @nn.compact
  def __call__(self, carry, x):
    h, c = carry
    gates = nn.Dense(4 * self.features, name="ih")(x) + nn.Dense(4 * self.features,
                                                                use_bias=False, name="hh")(h)
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def cell_ref(p, carry, x):
  h, c = carry
  gates = x @ p["ih"]["kernel"] + p["ih"]["bias"] + h @ p["hh"]["kernel"]
  i, f, g, o = jnp.split(gates, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  return (h, c), h


class LSTM(nn.Module):
  features: int
  reverse: bool = False

  @nn.compact
  def __call__(self, xs):  # xs: (time, batch, in)
    scanned = nn.scan(Cell, variable_broadcast="params", split_rngs={"params": False},
                      reverse=self.reverse)
    zeros = jnp.zeros((xs.shape[1], self.features))
    return scanned(self.features, name="cell")((zeros, zeros), xs)


@pytest.mark.parametrize("reverse", [False, True])
def test_scanned_cell_matches_lax_scan(reverse):
  xs = jax.random.normal(jax.random.key(1), (7, 2, 3))
  model = LSTM(4, reverse=reverse)
  variables = model.init(jax.random.key(0), xs)
  params = variables["params"]
  assert jax.tree.map(jnp.shape, params) == {
    "cell": {"ih": {"kernel": (3, 16), "bias": (16,)}, "hh": {"kernel": (4, 16)}}}

  def ref(p):
    zeros = jnp.zeros((2, 4))
    return jax.lax.scan(lambda c, x: cell_ref(p["cell"], c, x), (zeros, zeros), xs,
                        reverse=reverse)

  assert_trees_close(jax.jit(model.apply)(variables, xs), jax.jit(ref)(params))
  loss = lambda p: jnp.sum(model.apply({"params": p}, xs)[1] ** 2)
  ref_loss = lambda p: jnp.sum(ref(p)[1] ** 2)
  assert_trees_close(jax.jit(jax.grad(loss))(params), jax.jit(jax.grad(ref_loss))(params),
                     tol=1e-4)


class Block(nn.Module):
  @nn.compact
  def __call__(self, x, _):
    y = nn.Dense(x.shape[-1])(x)
    return x + jnp.tanh(y), None


def block_ref(p, x):
  return x + jnp.tanh(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])


class Stack(nn.Module):
  layers: int = 3

  @nn.compact
  def __call__(self, x):
    layer = nn.scan(nn.remat(Block), variable_axes={"params": 0}, split_rngs={"params": True},
                    length=self.layers, in_axes=nn.broadcast)
    return layer(name="layers")(x, None)[0]


def test_layer_stacking_with_remat_matches_lax_scan():
  x = jax.random.normal(jax.random.key(1), (2, 4))
  variables = Stack().init(jax.random.key(0), x)
  params = variables["params"]
  assert jax.tree.map(jnp.shape, params) == {
    "layers": {"Dense_0": {"kernel": (3, 4, 4), "bias": (3, 4)}}}
  k = params["layers"]["Dense_0"]["kernel"]
  assert not np.allclose(k[0], k[1])  # split params rng: layers differ

  def ref(p):
    return jax.lax.scan(lambda h, lp: (block_ref(lp, h), None), x, p["layers"])[0]

  np.testing.assert_allclose(Stack().apply(variables, x), ref(params), rtol=1e-5, atol=1e-5)
  loss = lambda p: jnp.sum(Stack().apply({"params": p}, x) ** 2)
  assert_trees_close(jax.grad(loss)(params), jax.grad(lambda p: jnp.sum(ref(p) ** 2))(params),
                     tol=1e-4)


class NormBlock(nn.Module):
  @nn.compact
  def __call__(self, x, _):
    x = nn.BatchNorm(use_running_average=False, momentum=0.5)(nn.Dense(3)(x))
    return x, None


def test_batch_stats_scanned_per_layer_are_updated_and_returned():
  S = nn.scan(NormBlock, variable_axes={"params": 0, "batch_stats": 0},
              split_rngs={"params": True}, length=2, in_axes=nn.broadcast)
  x = jax.random.normal(jax.random.key(1), (8, 3))
  variables = S().init(jax.random.key(0), x, None)
  assert variables["batch_stats"]["BatchNorm_0"]["mean"].shape == (2, 3)
  (y, _), updated = S().apply(variables, x, None, mutable=["batch_stats"])
  p = variables["params"]
  h = x @ p["Dense_0"]["kernel"][0] + p["Dense_0"]["bias"][0]
  np.testing.assert_allclose(updated["batch_stats"]["BatchNorm_0"]["mean"][0],
                             0.5 * h.mean(0), rtol=1e-5, atol=1e-6)


class CountingCell(nn.Module):
  @nn.compact
  def __call__(self, c, x):
    steps = self.variable("counter", "steps", jnp.zeros, ())
    if not self.is_initializing():
      steps.value += 1
    return c + x, c


def test_carried_collection_threads_through_the_steps():
  S = nn.scan(CountingCell, variable_carry="counter")
  xs = jnp.arange(5.0)
  variables = S().init(jax.random.key(0), 0.0, xs)
  (c, ys), updated = S().apply(variables, 0.0, xs, mutable=["counter"])
  assert float(updated["counter"]["steps"]) == 5.0
  np.testing.assert_allclose(ys, jnp.cumsum(xs) - xs)


def test_writing_a_broadcast_collection_in_the_loop_fails():
  S = nn.scan(CountingCell, variable_broadcast="counter")
  xs = jnp.arange(5.0)
  variables = S().init(jax.random.key(0), 0.0, xs)
  with pytest.raises(errors.TransformImmutableCollectionError,
                     match="nn.scan keeps collection 'counter'.*variable_carry='counter'"):
    S().apply(variables, 0.0, xs, mutable=["counter"])


class Dropper(nn.Module):
  @nn.compact
  def __call__(self, c, x):
    return c, jax.random.uniform(self.make_rng("dropout"), ())


def test_split_rngs_give_each_step_its_own_key():
  xs, rngs = jnp.zeros(4), {"dropout": jax.random.key(0)}
  split = nn.scan(Dropper, split_rngs={"dropout": True})().apply({}, 0.0, xs, rngs=rngs)
  same = nn.scan(Dropper, split_rngs={"dropout": False})().apply({}, 0.0, xs, rngs=rngs)
  assert len(set(np.asarray(split[1]).tolist())) == 4
  assert len(set(np.asarray(same[1]).tolist())) == 1


def test_remat_scan_matches_nested_lax_scan():
  Deep = nn.remat_scan(nn.Dense, lengths=(2, 3))
  x = jax.random.normal(jax.random.key(1), (4,))
  variables = Deep(4).init(jax.random.key(0), x)
  params = variables["params"]
  assert jax.tree.map(jnp.shape, params) == {"kernel": (2, 3, 4, 4), "bias": (2, 3, 4)}
  flat = jax.tree.map(lambda a: a.reshape(6, *a.shape[2:]), params)

  def ref(p):
    return jax.lax.scan(lambda h, lp: (h @ lp["kernel"] + lp["bias"], None), x, p)[0]

  np.testing.assert_allclose(Deep(4).apply(variables, x), ref(flat), rtol=1e-5, atol=1e-5)
  g = jax.grad(lambda p: jnp.sum(Deep(4).apply({"params": p}, x) ** 2))(params)
  g_ref = jax.grad(lambda p: jnp.sum(ref(p) ** 2))(flat)
  assert_trees_close(jax.tree.map(lambda a: a.reshape(6, *a.shape[2:]), g), g_ref, tol=1e-4)
