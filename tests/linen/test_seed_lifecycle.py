"""Every code example of the Module lifecycle design note (seed 003), except the two
nn.vmap ``Foo`` examples (lifted transforms come later)."""

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import random

import flaxen.linen as nn
from flaxen import errors, struct


def dense_ref(p, x):
  return x @ p["kernel"] + p["bias"]


class MLP(nn.Module):
  # 1. Attribute annotations
  hidden_size: int
  out_size: int

  # 2. The ``setup`` method
  def setup(self):
    self.hidden = nn.Dense(self.hidden_size)
    self.out = nn.Dense(self.out_size)

  # 3. User methods
  def __call__(self, x):
    a = self.hidden(x)
    h = nn.relu(a)
    return self.out(h)


class CompactMLP(nn.Module):
  hidden_size: int
  out_size: int

  @nn.compact
  def __call__(self, x):
    a = nn.Dense(self.hidden_size)(x)
    h = nn.relu(a)
    return nn.Dense(self.out_size)(h)


class CompactScaledMLP(nn.Module):
  hidden_size: int
  out_size: int

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.initializers.ones_init(), x.shape[-1:])
    x *= scale[None]
    a = nn.Dense(self.hidden_size)(x)
    h = nn.relu(a)
    return nn.Dense(self.out_size)(h)


class WrongModule(nn.Module):
  @nn.compact
  def __call__(self, x, mode):
    if mode == "encode":
      return nn.Dense(features=8)(x)
    elif mode == "decode":
      return nn.Dense(features=4)(x)


class CorrectModule(nn.Module):
  @nn.compact
  def __call__(self, x, mode):
    encoder = nn.Dense(8)
    decoder = nn.Dense(4)
    if mode == "encode":
      return encoder(x)
    elif mode == "decode":
      return decoder(x)


class TopLevelAccess(nn.Module):
  def setup(self):
    self.foo = nn.Dense(2)


def shapes(tree):
  return jax.tree.map(jnp.shape, tree)


def test_mlp_construction_init_apply():
  mlp = MLP(hidden_size=5, out_size=3)
  assert (mlp.hidden_size, mlp.out_size) == (5, 3)
  x = jax.numpy.ones((1, 2))
  variables = mlp.init(random.key(0), x)
  y = mlp.apply(variables, x)
  assert shapes(variables) == {"params": {
    "hidden": {"kernel": (2, 5), "bias": (5,)}, "out": {"kernel": (5, 3), "bias": (3,)}}}
  p = variables["params"]
  want = dense_ref(p["out"], jax.nn.relu(dense_ref(p["hidden"], x)))
  np.testing.assert_allclose(y, want, rtol=1e-6)


def test_init_is_apply_with_empty_variables_and_everything_mutable():
  mlp = MLP(hidden_size=5, out_size=3)
  x = jnp.ones((1, 2))
  variables = mlp.init(random.key(0), x)
  _, variables2 = mlp.apply({}, x, rngs={"params": random.key(0)}, mutable=True)
  assert jax.tree.structure(variables) == jax.tree.structure(variables2)
  for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(variables2), strict=True):
    np.testing.assert_array_equal(a, b)


def test_construction_creates_no_state():
  mlp = MLP(hidden_size=5, out_size=3)
  assert mlp.scope is None
  assert not hasattr(mlp, "hidden")
  mlp.init(random.key(0), jnp.ones((1, 2)))
  assert not hasattr(mlp, "hidden")  # apply worked on a clone


def test_compact_mlp_names_and_numerics():
  model = CompactMLP(hidden_size=5, out_size=3)
  x = jnp.arange(4.0).reshape(2, 2)
  variables = model.init(random.key(1), x)
  assert shapes(variables["params"]) == {
    "Dense_0": {"kernel": (2, 5), "bias": (5,)}, "Dense_1": {"kernel": (5, 3), "bias": (3,)}}
  p = variables["params"]
  want = dense_ref(p["Dense_1"], jax.nn.relu(dense_ref(p["Dense_0"], x)))
  np.testing.assert_allclose(model.apply(variables, x), want, rtol=1e-6)


def test_compact_scaled_mlp_infers_scale_shape():
  model = CompactScaledMLP(hidden_size=5, out_size=3)
  x = jnp.ones((1, 7))
  variables = model.init(random.key(0), x)
  np.testing.assert_array_equal(variables["params"]["scale"], np.ones(7))
  p = dict(variables["params"], scale=jnp.full((7,), 2.0))
  y = model.apply({"params": p}, x)
  want = dense_ref(p["Dense_1"], jax.nn.relu(dense_ref(p["Dense_0"], 2 * x)))
  np.testing.assert_allclose(y, want, rtol=1e-6)


def test_wrong_module_ends_in_a_clear_shape_error():
  model = WrongModule()
  x = jnp.ones((1, 3))
  variables = model.init(random.key(0), x, "encode")
  assert model.apply(variables, x, "encode").shape == (1, 8)
  with pytest.raises(errors.ScopeParamShapeError) as info:
    model.apply(variables, x, "decode")
  msg = str(info.value)
  assert "Dense_0" in msg and "kernel" in msg
  assert "(3, 4)" in msg and "(3, 8)" in msg
  assert "name=" in msg and "setup()" in msg and "control flow" in msg


def test_correct_module_keeps_both_submodules():
  model = CorrectModule()
  x = jnp.ones((1, 3))
  enc = model.init(random.key(0), x, "encode")["params"]
  dec = model.init(random.key(0), x, "decode")["params"]
  # The names no longer depend on the branch taken.
  assert shapes(enc) == {"Dense_0": {"kernel": (3, 8), "bias": (8,)}}
  assert shapes(dec) == {"Dense_1": {"kernel": (3, 4), "bias": (4,)}}
  variables = {"params": {**enc, **dec}}
  assert model.apply(variables, x, "encode").shape == (1, 8)
  assert model.apply(variables, x, "decode").shape == (1, 4)


def test_top_level_module_is_unbound_and_setup_is_lazy():
  mdl = TopLevelAccess()
  assert not hasattr(mdl, "foo")  # foo is not defined because setup is not called
  variables = {"params": {"foo": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}}
  bound = mdl.bind(variables)
  assert "foo" not in bound.__dict__  # still lazy after binding
  assert isinstance(bound.foo, nn.Dense)  # attribute access runs setup
  np.testing.assert_allclose(bound.foo(jnp.ones((1, 3))), [[3.0, 3.0]])


class Encoder(nn.Module):
  latents: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.latents)(x)


class Decoder(nn.Module):
  features: int

  @nn.compact
  def __call__(self, z):
    return nn.Dense(self.features)(z)


class AutoEncoder(nn.Module):
  def setup(self):
    self.encoder = Encoder(2)
    self.decoder = Decoder(5)

  def __call__(self, x):
    return self.decoder(self.encoder(x))


def test_autoencoder_submodule_use():
  ae = AutoEncoder()
  x = jnp.ones((1, 5))
  variables = ae.init(random.key(0), x)
  assert not hasattr(ae, "decoder")  # needs binding first, as the note explains
  z = jnp.ones((1, 2))
  decoded = nn.apply(lambda m, z: m.decoder(z), ae)(variables, z)
  decoder, decoder_vars = ae.bind(variables).decoder.unbind()
  assert decoder.scope is None and decoder == Decoder(5)
  np.testing.assert_allclose(decoder.apply(decoder_vars, z), decoded, rtol=1e-6)
  p = variables["params"]["decoder"]["Dense_0"]
  np.testing.assert_allclose(decoded, dense_ref(p, z), rtol=1e-6)


def test_apply_is_pure_for_jit_and_grad():
  mlp = MLP(hidden_size=4, out_size=1)
  x = jnp.ones((3, 2))
  variables = mlp.init(random.key(0), x)
  np.testing.assert_allclose(jax.jit(mlp.apply)(variables, x), mlp.apply(variables, x), rtol=1e-6)

  def loss(params):
    return jnp.sum(mlp.apply({"params": params}, x))

  grads = jax.grad(loss)(variables["params"])
  p = variables["params"]
  ref = jax.grad(lambda p: jnp.sum(dense_ref(p["out"], jax.nn.relu(dense_ref(p["hidden"], x)))))
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref(p)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6)


class Partial(struct.PyTreeNode):
  fn: Callable = struct.field(pytree_node=False)
  args: Iterable[Any]

  def __call__(self, *args, **kwargs):
    return self.fn(*(tuple(self.args) + args), **kwargs)


def test_partial_pytree_node_closure():
  p = Partial(lambda a, b: a * b, [jnp.float32(3.0)])
  assert float(p(2.0)) == 6.0
  leaves, treedef = jax.tree.flatten(p)
  assert len(leaves) == 1 and float(leaves[0]) == 3.0
  doubled = jax.tree.map(lambda v: 2 * v, p)
  assert float(doubled(2.0)) == 12.0 and doubled.fn is p.fn
