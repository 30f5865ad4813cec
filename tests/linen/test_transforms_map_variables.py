"""nn.map_variables (weight standardization, masking) and nn.named_call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors


def close(a, b, tol=1e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


def standardize(kernel):
  return (kernel - kernel.mean(0)) / kernel.std(0)


def std_in(vs):
  return {"params": {**vs["params"], "kernel": standardize(vs["params"]["kernel"])}}


def test_weight_standardization_matches_the_reference_values_and_grads():
  StdDense = nn.map_variables(nn.Dense, "params", std_in, init=True)
  x = jax.random.normal(jax.random.key(1), (2, 3))
  variables = StdDense(4).init(jax.random.key(0), x)
  p = variables["params"]
  assert jax.tree.map(jnp.shape, p) == {"kernel": (3, 4), "bias": (4,)}  # stored raw
  ref = lambda p: x @ standardize(p["kernel"]) + p["bias"]
  close(StdDense(4).apply(variables, x), ref(p))
  grads = jax.grad(lambda p: jnp.sum(jnp.sin(StdDense(4).apply({"params": p}, x))))(p)
  close(grads, jax.grad(lambda p: jnp.sum(jnp.sin(ref(p))))(p), tol=1e-4)


class Counting(nn.Module):
  @nn.compact
  def __call__(self, x):
    n = self.variable("stats", "n", jnp.zeros, ())
    if not self.is_initializing():
      n.value += 1
    return nn.Dense(3, use_bias=False)(x)


def causal(vs):
  return {**vs, "params": jax.tree.map(jnp.triu, vs["params"])}


def test_masked_params_and_mutability_of_mapped_collections():
  Masked = nn.map_variables(Counting, ["params", "stats"], causal, init=True)
  x = jnp.ones((1, 3))
  variables = Masked().init(jax.random.key(0), x)
  kernel = variables["params"]["Dense_0"]["kernel"]
  with pytest.raises(errors.TransformImmutableCollectionError, match="'stats'"):
    Masked().apply(variables, x, mutable=["stats"])
  Writable = nn.map_variables(Counting, ["params", "stats"], causal, init=True, mutable=True)
  y, updated = Writable().apply(variables, x, mutable=["stats"])
  close(y, x @ jnp.triu(kernel))
  assert float(updated["stats"]["n"]) == 1.0


class Named(nn.Module):
  @nn.named_call
  def __call__(self, x):
    return jnp.sin(x)

  def plain(self, x):
    return jnp.cos(x)

  def optional(self, x):
    return jnp.tan(x)

  optional = nn.named_call(optional, force=False)


def name_stack(fn, x=1.0):
  return str(jax.make_jaxpr(fn)(x).jaxpr.eqns[0].source_info.name_stack)


def test_named_call_names_the_operations_of_a_method():
  assert name_stack(lambda x: Named(name="head").apply({}, x)) == "head.__call__"
  assert name_stack(lambda x: Named().apply({}, x, method="plain")) == ""
  assert name_stack(lambda x: Named().apply({}, x, method="optional")) == ""
  with nn.override_named_call(True):
    assert "Named.optional" in name_stack(lambda x: Named().apply({}, x, method="optional"))


class TiedAutoEncoder(nn.Module):
  features: int = 3
  latents: int = 2

  @nn.compact
  def _dense(self, x, transpose):
    transposed = lambda vs: jax.tree.map(lambda k: k.T, vs)
    dense = nn.map_variables(nn.Dense, "params", transposed if transpose else lambda vs: vs,
                             transposed if transpose else lambda vs: vs, init=not transpose)
    return dense(self.features if transpose else self.latents, use_bias=False, name="dense")(x)

  def encode(self, x):
    return self._dense(x, transpose=False)

  def decode(self, z):
    return self._dense(z, transpose=True)

  def __call__(self, x):
    return self.decode(self.encode(x))


def test_weight_tying_decoder_uses_the_transposed_encoder_kernel():
  x = jax.random.normal(jax.random.key(1), (4, 3))
  variables = TiedAutoEncoder().init(jax.random.key(0), x)
  kernel = variables["params"]["dense"]["kernel"]
  assert kernel.shape == (3, 2)
  ref = lambda k: (x @ k) @ k.T
  close(TiedAutoEncoder().apply(variables, x), ref(kernel))
  grads = jax.grad(lambda p: jnp.sum(TiedAutoEncoder().apply({"params": p}, x) ** 2))(
    variables["params"])
  close(grads["dense"]["kernel"], jax.grad(lambda k: jnp.sum(ref(k) ** 2))(kernel), tol=1e-4)
