"""A Linen module bound inside a JAX transform and used after it returned raises
InvalidScopeError naming the scope path and the fix, not JAX's UnexpectedTracerError."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors

X = jnp.ones((2, 3))


class Model(nn.Module):
  def setup(self):
    self.dense = nn.Dense(2)

  def __call__(self, x):
    return self.dense(x)


MODEL = Model()
PARAMS = MODEL.init(jax.random.key(0), X)


@pytest.mark.parametrize("transform", [jax.jit, jax.vmap], ids=["jit", "vmap"])
def test_bound_module_kept_after_the_transform(transform):
  kept = {}

  def f(params, x):
    kept["model"] = MODEL.bind(params)
    return kept["model"](x)

  params = PARAMS if transform is jax.jit else jax.tree.map(lambda p: jnp.stack([p, p]), PARAMS)
  transform(f)(params, X if transform is jax.jit else jnp.stack([X, X]))
  with pytest.raises(errors.InvalidScopeError, match=r'"/dense" was bound inside a JAX') as e:
    kept["model"](X)
  assert "Fix: use the bound module inside the transformed function" in str(e.value)


def keeps_self(kept: dict) -> type:
  """A Module class that stores its bound self in ``kept`` when called."""

  class Keeps(nn.Module):
    @nn.compact
    def __call__(self, x):
      kept["self"] = self
      return nn.Dense(2)(x)

  return Keeps


def test_self_kept_from_apply_under_jit():
  kept = {}
  Keeps = keeps_self(kept)
  params = Keeps().init(jax.random.key(0), X)
  jax.jit(Keeps().apply)(params, X)
  with pytest.raises(errors.InvalidScopeError, match="bound inside a JAX transform"):
    kept["self"].variables


def test_concrete_binds_work_across_traces():
  bound = MODEL.bind(PARAMS)  # bound outside: usable inside a transform and after it
  expected = X @ PARAMS["params"]["dense"]["kernel"] + PARAMS["params"]["dense"]["bias"]
  # rtol: float32 rounding of the same 3-term dot product, jitted or not
  np.testing.assert_allclose(jax.jit(lambda x: bound(x))(X), expected, rtol=1e-6)
  np.testing.assert_allclose(bound(X), expected, rtol=1e-6)

  kept = {}

  @jax.jit
  def f(x):
    kept["model"] = MODEL.bind(PARAMS)  # closed-over concrete params: nothing is traced
    return x

  f(X)
  np.testing.assert_allclose(kept["model"](X), expected, rtol=1e-6)


def test_apply_under_transforms_leaves_no_tracer_in_module_cycles(monkeypatch):
  import functools
  import gc

  model = nn.Sequential([nn.Dense(4)])  # Sequential and its layer refer to each other

  @jax.jit
  @functools.partial(jax.vmap, in_axes=(0, None))
  def sample(rng, x):
    return model.apply(model.init(rng, x), x)

  # JAX's leak check runs gc.collect first; without it, a tracer kept alive by a reference
  # cycle until the next collection counts as leaked.
  monkeypatch.setattr(gc, "collect", lambda *a: 0)
  with jax.checking_leaks():
    out = sample(jax.random.split(jax.random.key(0), 3), jnp.ones((2, 4)))
  assert out.shape == (3, 2, 4)


def test_variables_of_a_module_kept_from_apply_raise():
  kept = {}
  Keeps = keeps_self(kept)
  params = Keeps().init(jax.random.key(0), X)
  Keeps().apply(params, X)
  with pytest.raises(errors.InvalidScopeError, match="no longer valid"):
    kept["self"].variables
