"""The seed's functionalization examples: nn.vmap of a method that receives a closure.

Closing over a module hides it from the transform (an error that explains the fix); passing
it inside a ``struct.PyTreeNode`` Partial makes it visible, and its params get the vmapped
axis.
"""

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors, struct


class Partial(struct.PyTreeNode):
  fn: Callable = struct.field(pytree_node=False)
  args: Iterable[Any]

  def __call__(self, *args, **kwargs):
    return self.fn(*(tuple(self.args) + args), **kwargs)


class ClosureFoo(nn.Module):
  @nn.compact
  def __call__(self, x):
    dense = nn.Dense(x.shape[-1])
    fn = lambda x: dense(x) + 1
    vmap_inner = nn.vmap(ClosureFoo.inner, in_axes=0, variable_axes={"params": 0},
                         split_rngs={"params": True})
    return vmap_inner(self, x, fn)

  def inner(self, x, fn):
    for _ in range(3):
      x = fn(x)
    return x


class PartialFoo(nn.Module):
  @nn.compact
  def __call__(self, x):
    dense = nn.Dense(x.shape[-1])
    fn = lambda mdl, x: mdl(x) + 1
    vmap_inner = nn.vmap(PartialFoo.inner, in_axes=0, variable_axes={"params": 0},
                         split_rngs={"params": True})
    return vmap_inner(self, x, Partial(fn, [dense]))

  def inner(self, x, fn):
    for _ in range(3):
      x = fn(x)
    return x


class CallsInnerDirectly(nn.Module):
  @nn.compact
  def __call__(self, x):
    dense = nn.Dense(x.shape[-1])
    return ClosureFoo.inner(self, x, lambda x: dense(x) + 1)


def test_closure_over_a_module_fails_with_the_partial_fix():
  with pytest.raises(errors.TransformedClosureError) as info:
    ClosureFoo().init(jax.random.key(0), jnp.ones((4, 3)))
  message = str(info.value)
  assert "Dense" in message and "/Dense_0" in message and "nn.vmap" in message
  assert "invisible to the transform" in message
  assert "PyTreeNode" in message and "Partial" in message


def test_calling_inner_without_a_transform_works():
  x = jnp.ones((4, 3))
  variables = CallsInnerDirectly().init(jax.random.key(0), x)
  assert variables["params"]["Dense_0"]["kernel"].shape == (3, 3)


def test_partial_version_gives_params_with_the_batch_axis():
  batch, features = 4, 3
  x = jax.random.normal(jax.random.key(1), (batch, features))
  variables = PartialFoo().init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, variables) == {
    "params": {"Dense_0": {"kernel": (batch, features, features), "bias": (batch, features)}}}
  kernels = variables["params"]["Dense_0"]["kernel"]
  assert not np.allclose(kernels[0], kernels[1])  # split_rngs: each slice initialized apart

  def reference(params, x):
    def one(p, x):
      for _ in range(3):
        x = x @ p["kernel"] + p["bias"] + 1
      return x
    return jax.vmap(one)(params["Dense_0"], x)

  y = PartialFoo().apply(variables, x)
  np.testing.assert_allclose(y, reference(variables["params"], x), rtol=1e-5, atol=1e-5)

  loss = lambda p: jnp.sum(PartialFoo().apply({"params": p}, x) ** 2)
  ref_loss = lambda p: jnp.sum(reference(p, x) ** 2)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
               jax.grad(loss)(variables["params"]), jax.grad(ref_loss)(variables["params"]))


class ClosesOverSelf(nn.Module):
  @nn.compact
  def __call__(self, x):
    scaled = lambda mdl, x: x * self.param("w", nn.initializers.ones, ())  # self, not mdl
    return nn.vmap(scaled, variable_axes={"params": 0}, split_rngs={"params": True})(self, x)


def test_creating_variables_through_a_closed_over_self_fails():
  with pytest.raises(errors.TransformedClosureError, match="variables and rngs at '/'"):
    ClosesOverSelf().init(jax.random.key(0), jnp.ones((2, 3)))
