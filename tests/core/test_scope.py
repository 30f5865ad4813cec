"""The functional variable store: bind/init/apply over scopes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors
from flaxen.core import DenyList, apply, bind, freeze, init


def dense(scope, x, features):
  w = scope.param("w", jax.nn.initializers.ones, (x.shape[-1], features))
  return x @ w


def mlp(scope, x):
  h = dense(scope.push("hidden"), x, 3)
  counter = scope.variable("state", "calls", lambda: jnp.zeros((), jnp.int32))
  if scope.is_mutable_collection("state") and not scope.get_flag("initializing"):
    counter.value += 1
  return dense(scope.push("out"), h, 1)


def test_init_apply_structure_and_mutation():
  x = jnp.ones((1, 2))
  y, v = init(mlp)(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, v) == {
    "params": {"hidden": {"w": (2, 3)}, "out": {"w": (3, 1)}}, "state": {"calls": ()}}
  assert float(y[0, 0]) == 6.0
  assert float(apply(mlp)(v, x)[0, 0]) == 6.0
  _, mutated = apply(mlp, mutable="state")(freeze(v), x)
  assert set(mutated) == {"state"} and int(mutated["state"]["calls"]) == 1
  assert int(v["state"]["calls"]) == 0


def test_variable_views_and_put_variables():
  scope = bind({"params": {"a": {"w": jnp.ones(2)}}}, mutable=["params"])
  child = scope.push("a")
  assert child.path == ("a",) and child.path_text == "/a"
  assert child.has_variable("params", "w") and not child.has_variable("params", "v")
  assert child.get_variable("params", "missing", 7) == 7
  assert set(child.variables()["params"]) == {"w"}
  scope.put_variables({"params": {"a": {"w": jnp.zeros(2), "v": jnp.ones(1)}}})
  assert child.get_variable("params", "w").tolist() == [0.0, 0.0]  # caches refreshed
  assert child.has_variable("params", "v")
  assert set(scope.mutable_variables()) == {"params"}


def test_errors_name_path_collection_and_shapes():
  scope = bind({"params": {"w": jnp.ones((2, 3))}})
  shapes = r'\(2, 4\) but got shape \(2, 3\).*"w" in "/"'
  with pytest.raises(errors.ScopeParamShapeError, match=shapes):
    scope.param("w", jax.nn.initializers.ones, (2, 4))
  with pytest.raises(errors.ModifyScopeVariableError, match='"w" in "/sub".*"params"'):
    scope.push("sub").put_variable("params", "w", 1)
  with pytest.raises(errors.ScopeVariableNotFoundError, match='"v".*"params".*"/"'):
    scope.variable("params", "v")
  with pytest.raises(errors.NameInUseError, match="sub"):
    scope.push("sub")
  assert scope.push("sub", reuse=True) is scope.push("sub", reuse=True)
  assert scope.push(prefix="layer_").name == "layer_0"


def test_rng_derivation_is_deterministic_and_distinct():
  def keys(scope):
    a = scope.push("a")
    return [a.make_rng("params"), a.make_rng("params"), scope.push("b").make_rng("params")]

  ks = apply(keys)({}, rngs={"params": jax.random.key(3)})
  ks2 = apply(keys)({}, rngs={"params": jax.random.key(3)})
  data = [jax.random.key_data(k).tolist() for k in ks]
  assert data == [jax.random.key_data(k).tolist() for k in ks2]
  assert len({str(d) for d in data}) == 3


def test_invalidated_scope_and_init_mutable_filter():
  leaked = []

  def f(scope):
    leaked.append(scope)
    scope.put_variable("intermediates", "x", 1)
    return scope.param("w", lambda k: jnp.zeros(()))

  with pytest.raises(errors.ModifyScopeVariableError):
    init(f, mutable=DenyList("intermediates"))(jax.random.key(0))
  _, v = init(f)(jax.random.key(0))
  assert set(v) == {"params", "intermediates"}
  with pytest.raises(errors.InvalidScopeError):
    leaked[-1].make_rng("params")


def test_param_shape_check_does_not_retrace_initializer():
  calls = []

  def init_fn(key, n):
    calls.append(n)
    return jnp.zeros((n, 2))

  v = {"params": {"t": jnp.zeros((3, 2))}}
  for _ in range(3):
    np.testing.assert_array_equal(bind(v).param("t", init_fn, 3), np.zeros((3, 2)))
  assert calls == [3]  # traced abstractly once, then cached


def test_keyless_initializers_draw_no_key():
  def f(scope):
    scope.param("b", jax.nn.initializers.zeros, (2,))
    scope.param("s", jax.nn.initializers.ones, (2,))
    return scope.param("w", jax.nn.initializers.normal(), (2,))

  jaxpr = jax.make_jaxpr(lambda k: init(f)(k))(jax.random.key(0))
  assert [str(e.primitive) for e in jaxpr.eqns].count("random_fold_in") == 1
  with pytest.raises(errors.InvalidRngError, match='"params"'):
    init(f)({})  # a keyless init still needs the stream, as any param does


# --------------------------------------------------------- Flax's public Scope API


def test_public_constructor_rewound_and_names():
  import flaxen.linen as nn
  from flaxen.core import Scope as PublicScope

  key = jax.random.key(0)
  scope = PublicScope({}, {"params": key}, mutable=["params"])
  x = jnp.ones((2,))
  y = nn.Dense(3, parent=scope)(x)
  params = scope.variables()["params"]
  y2 = nn.Dense(3, parent=scope.rewound())(x)  # same name again, same params
  np.testing.assert_array_equal(y, y2)
  assert scope.variables()["params"] is params or scope.variables()["params"] == params
  scope.push("Dense_0")
  assert scope.default_name("Dense_") == "Dense_1" and scope.name_reserved("Dense_0")
  scope.reserve("extra")
  with pytest.raises(errors.NameInUseError):
    scope.reserve("extra")
  assert scope.has_flag("initializing") is False and scope.invalid is False
  assert PublicScope(variables={}).variables() == {}


def test_child_applies_fn_to_a_named_child_scope():
  from flaxen.core import Scope as PublicScope

  scope = PublicScope({}, {"params": jax.random.key(1)}, mutable=True)

  def make(s, n, scale=1.0):
    return s.param("w", lambda k, shape: jnp.full(shape, scale), (n,))

  w = scope.child(make, name="layer", scale=2.0)(3)
  np.testing.assert_array_equal(w, jnp.full((3,), 2.0))
  assert scope.variables()["params"]["layer"]["w"].shape == (3,)
  assert scope.temporary("tmp").path == ("tmp",) and not scope.name_reserved("tmp")
