"""nn.fold_rngs, nn.add_metadata_axis and nn.scan's data_transform."""

import jax
import jax.numpy as jnp
import numpy as np

import flaxen.linen as nn


def test_fold_rngs_draws_the_keys_jit_draws():
  class Draw(nn.Module):
    def __call__(self, how):
      f = lambda m: (m.make_rng("params"), m.make_rng("params"))
      return {"jit": nn.jit, "fold": nn.fold_rngs, "plain": lambda g: g}[how](f)(self)

  rngs = {"params": jax.random.key(3)}
  jit_keys = Draw().apply({}, "jit", rngs=rngs)
  fold_keys = Draw().apply({}, "fold", rngs=rngs)
  plain_keys = Draw().apply({}, "plain", rngs=rngs)
  for a, b in zip(jit_keys, fold_keys, strict=True):
    np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
  # the lifted call folds a fresh key, unlike a plain call on the module
  assert not np.array_equal(jax.random.key_data(fold_keys[0]),
                            jax.random.key_data(plain_keys[0]))


def test_fold_rngs_class_writes_variables_back():
  FoldDense = nn.fold_rngs(nn.Dense)
  x = jnp.ones((2, 3))
  variables = FoldDense(4).init(jax.random.key(0), x)
  p = variables["params"]
  np.testing.assert_allclose(FoldDense(4).apply(variables, x), x @ p["kernel"] + p["bias"],
                             rtol=1e-6)  # fp32 matmul


def test_add_metadata_axis_inside_and_outside():
  seen = {}

  class Layer(nn.Module):
    @nn.compact
    def __call__(self, x):
      init = nn.with_partitioning(nn.initializers.ones, ("a", "b"))
      w = self.param("w", init, (3, 2))
      seen["names"] = self.variables["params"]["w"].names
      return x @ w

  Stacked = nn.add_metadata_axis(Layer, variable_axes={"params": 1},
                                 metadata_params={nn.PARTITION_NAME: "s"})
  x = jnp.arange(3.0)
  variables = Stacked().init(jax.random.key(0), x)
  assert seen["names"] == ("a", "b")
  assert variables["params"]["w"].names == ("a", "s", "b")
  assert variables["params"]["w"].value.shape == (3, 2)  # metadata only
  seen.clear()
  np.testing.assert_allclose(Stacked().apply(variables, x), x @ jnp.ones((3, 2)))
  assert seen["names"] == ("a", "b")


def test_scan_data_transform_sees_each_step():
  calls = []

  def double_params(variables, rngs):
    calls.append(1)
    scanned = {c: tuple(jax.tree.map(lambda v: 2 * v, t) for t in trees)
               for c, trees in variables[0].items()}
    return (scanned, *variables[1:]), rngs

  class Cell(nn.Module):
    @nn.compact
    def __call__(self, c, x):
      w = self.param("w", nn.initializers.ones, ())
      return c + w * x, w * x

  Scan = nn.scan(Cell, variable_axes={"params": 0}, split_rngs={"params": True},
                 data_transform=double_params, check_constancy_invariants=True)
  xs = jnp.arange(4.0)
  variables = Scan().init(jax.random.key(0), 0.0, xs)
  calls.clear()
  carry, ys = Scan().apply(variables, 0.0, xs)
  assert calls  # traced once by lax.scan
  np.testing.assert_allclose(ys, 2 * xs)  # the steps saw w doubled
  np.testing.assert_allclose(carry, 2 * xs.sum())


def test_transformed_method_returning_a_module_or_variable_is_named():
  import pytest

  from flaxen import errors

  class Bar(nn.Module):
    what: str

    @nn.compact
    def __call__(self, x):
      out = self.helper(x)
      return out if self.what == "array" else out(x)

    @nn.jit
    def helper(self, x):
      if self.what == "module":
        return nn.Dense(2)
      if self.what == "variable":
        return self.variable("state", "v", jnp.zeros, ())
      return x * 2

  x = jnp.ones(2)
  np.testing.assert_allclose(Bar("array").apply({}, x), 2 * x)
  for what in ("module", "variable"):
    with pytest.raises(errors.TransformedMethodReturnValueError, match="helper"):
      Bar(what).init(jax.random.key(0), x)


def test_vmap_applies_box_axis_hooks_outside_the_map():
  from typing import Any

  from flaxen import struct
  from flaxen.core.meta import AxisMetadata

  class Mean(struct.PyTreeNode, AxisMetadata):
    """Stored as the mean over the mapped axis, broadcast back when mapped again."""

    value: Any

    def unbox(self):
      return self.value

    def replace_boxed(self, val):
      return self.replace(value=val)

    def add_axis(self, index, params):
      return self.replace(value=jnp.mean(self.value, axis=index))

    def remove_axis(self, index, params):
      shape = list(jnp.shape(self.value))
      shape.insert(index, params["size"])
      return self.replace(value=jnp.broadcast_to(self.value, shape))

  class Inner(nn.Module):
    @nn.compact
    def __call__(self, x):
      v = self.variable("aux", "v", lambda: Mean(jnp.zeros(())))
      v.value = v.value + x.sum()
      return x

  V = nn.vmap(Inner, variable_axes={"aux": 0}, metadata_params={"size": 2})
  x = jnp.arange(6.0).reshape(2, 3)
  _, state = V().init_with_output(jax.random.key(0), x)
  box = state["aux"]["v"]
  assert isinstance(box, Mean) and box.value.shape == ()
  np.testing.assert_allclose(box.value, (3.0 + 12.0) / 2)  # mean of the per-row sums
  _, state = V().apply(state, x, mutable="aux")
  np.testing.assert_allclose(state["aux"]["v"].value, 7.5 + 7.5)  # each row adds its sum
