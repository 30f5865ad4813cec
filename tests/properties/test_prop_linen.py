"""Random Linen module trees through init, apply, bind and clone, against a hand-written
JAX forward pass of the same tree.

A tree nests Dense layers in Sequential, compact modules that build their children inline
(auto-named ``Dense_0``...), setup modules holding a list of children (``layers_0``...),
and a wrapper adopting a child passed as a field (``inner``).
"""

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flaxen.linen as nn

CI, SLOW = settings.get_profile("ci"), settings.get_profile("slow")
X = jnp.asarray(np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3))
KEY = jax.random.key(0)


def make(spec) -> nn.Module:
  kind, arg = spec
  if kind == "dense":
    return nn.Dense(arg)
  if kind == "seq":
    return nn.Sequential([make(s) for s in arg])
  return {"chain": Chain, "setup": SetupChain, "wrap": Wrap}[kind](arg)


class Chain(nn.Module):
  spec: tuple

  @nn.compact
  def __call__(self, x):
    for s in self.spec:
      x = make(s)(x)
    return x * self.param("scale", nn.initializers.ones, ())


class SetupChain(nn.Module):
  spec: tuple

  def setup(self):
    self.layers = [make(s) for s in self.spec]
    self.scale = self.param("scale", nn.initializers.ones, ())

  def __call__(self, x):
    for layer in self.layers:
      x = layer(x)
    return x * self.scale


class Wrap(nn.Module):
  spec: tuple

  def setup(self):
    self.inner = make(self.spec)

  def __call__(self, x):
    return self.inner(x) + 1.0


CLASS = {"dense": "Dense", "seq": "Sequential", "chain": "Chain", "setup": "SetupChain",
         "wrap": "Wrap"}


# Where parameters live follows Flax's naming rules: a module built inside a compact method
# belongs to that method's module at once, named ClassName_<n> in construction order; so
# in ``nn.Sequential([nn.Dense(2)])`` built there, the Dense is constructed first and is
# the compact module's ``Dense_0``, a sibling of ``Sequential_0``. A module built outside
# any module or in setup is adopted by whatever holds it: the attribute it is assigned to
# (``layers_0``, ``inner``) or the Sequential whose ``layers`` it is in.


def resolve(spec, path: tuple):
  """``spec`` as a tree of ``(kind, path of its scope, features or children)``."""
  kind, arg = spec
  if kind == "dense":
    return ("dense", path, arg)
  if kind == "chain":
    counts = collections.Counter()
    return ("chain", path, [in_compact(s, path, counts) for s in arg])
  names = ["inner"] if kind == "wrap" else [f"layers_{i}" for i in range(len(arg))]
  subs = [arg] if kind == "wrap" else arg
  return (kind, path, [resolve(s, (*path, n)) for n, s in zip(names, subs, strict=True)])


def in_compact(spec, owner: tuple, counts: collections.Counter):
  """``spec`` constructed inside the compact method of the module at ``owner``."""
  kind, arg = spec
  built = [in_compact(s, owner, counts) for s in arg] if kind == "seq" else None
  cls = CLASS[kind]
  name = f"{cls}_{counts[cls]}"
  counts[cls] += 1
  return ("seq", None, built) if kind == "seq" else resolve(spec, (*owner, name))


def lookup(tree, path):
  for k in path:
    tree = tree[k]
  return tree


def forward(node, params, x):
  """The hand-written forward pass."""
  kind, path, arg = node
  if kind == "dense":
    p = lookup(params, path)
    return x @ p["kernel"] + p["bias"]
  for sub in arg:
    x = forward(sub, params, x)
  if kind in ("chain", "setup"):
    x = x * lookup(params, path)["scale"]
  return x + 1.0 if kind == "wrap" else x


def param_shapes(node, features: int, tree: dict) -> int:
  """Record in ``tree`` the shape of each param for an input of ``features``."""
  kind, path, arg = node
  at = lambda: functools.reduce(lambda d, k: d.setdefault(k, {}), path, tree)
  if kind == "dense":
    at().update(kernel=(features, arg), bias=(arg,))
    return arg
  for sub in arg:
    features = param_shapes(sub, features, tree)
  if kind in ("chain", "setup"):
    at()["scale"] = ()
  return features


leaf_specs = st.tuples(st.just("dense"), st.integers(1, 3))
specs = st.recursive(
  leaf_specs,
  lambda c: st.tuples(st.sampled_from(["seq", "chain", "setup"]),
                      st.lists(c, min_size=1, max_size=3).map(tuple))
  | st.tuples(st.just("wrap"), c),
  max_leaves=5,
)


def perturbed(variables):
  """Variables with every value moved, so a forward pass that ignored one would show."""
  leaves, treedef = jax.tree.flatten(variables)
  return jax.tree.unflatten(treedef, [x + 0.25 * (i + 1) for i, x in enumerate(leaves)])


def assert_close(actual, expected):
  """float32 sums of products: an output's rounding error scales with the activations
  behind it, not with the output. With perturbed weights an output that cancels down to
  0.17 beside one of 1,450 was off by 7.6e-6, one float32 ulp at 100. The absolute
  tolerance is therefore 1e-6 of the largest output (about 12 ulps of it)."""
  scale = max(1.0, float(np.max(np.abs(expected))))
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * scale)


def assert_same(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


@settings(CI, max_examples=120)  # five traces of the tree per example
@given(specs)
def test_init_apply_bind_clone_agree_with_the_reference(spec):
  module, node = make(spec), resolve(spec, ())
  out, variables = module.init_with_output(KEY, X)
  expected_shapes = {}
  param_shapes(node, X.shape[1], expected_shapes)
  params = variables["params"]
  assert jax.tree.map(jnp.shape, params) == expected_shapes
  assert_close(out, forward(node, params, X))

  moved = perturbed(variables)
  expected = forward(node, moved["params"], X)
  assert_close(module.apply(moved, X), expected)
  bound = module.bind(moved)
  assert_close(bound(X), expected)
  assert_same(bound.variables, moved)

  clone = module.clone()
  assert clone is not module and clone == module
  assert_same(clone.init(KEY, X), variables)
  assert_close(clone.apply(moved, X), expected)


@pytest.mark.slow
@SLOW
@given(specs)
def test_init_apply_long(spec):
  module = make(spec)
  variables = module.init(KEY, X)
  moved = perturbed(variables)
  expected = forward(resolve(spec, ()), moved["params"], X)
  assert_close(module.apply(moved, X), expected)
