"""Module variables, collections, mutability, rngs and the init/apply entry points."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import errors
from flaxen.core import DenyList, freeze

KEY = jax.random.key(0)


class Dense(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    return x @ self.param("kernel", jax.nn.initializers.lecun_normal(),
                          (x.shape[-1], self.features))


class Counter(nn.Module):
  """A running mean in 'batch_stats', updated only when the collection is mutable."""

  @nn.compact
  def __call__(self, x):
    count = self.variable("batch_stats", "count", lambda: jnp.zeros((), jnp.int32))
    mean = self.variable("batch_stats", "mean", jnp.zeros, x.shape[-1:])
    if not self.is_initializing() and count.is_mutable():
      count.value += 1
      mean.value = mean.value + (x.mean(0) - mean.value) / count.value
    return x - mean.value


def test_mutable_collections_are_returned_and_inputs_untouched():
  model = Counter()
  x = jnp.array([[1.0, 3.0]])
  v = model.init(KEY, x)
  assert jax.tree.map(jnp.shape, v) == {"batch_stats": {"count": (), "mean": (2,)}}
  frozen = freeze(v)
  y, updates = model.apply(frozen, x, mutable=["batch_stats"])
  np.testing.assert_allclose(y, [[0.0, 0.0]])  # x minus the updated mean
  np.testing.assert_allclose(updates["batch_stats"]["mean"], [1.0, 3.0])
  assert int(updates["batch_stats"]["count"]) == 1
  assert int(frozen["batch_stats"]["count"]) == 0 and int(v["batch_stats"]["count"]) == 0
  assert type(updates) is dict and type(updates["batch_stats"]) is dict
  _, again = model.apply(updates, 3 * x, mutable=True)
  np.testing.assert_allclose(again["batch_stats"]["mean"], [2.0, 6.0])


def test_immutable_collection_reads_but_does_not_write():
  model = Counter()
  x = jnp.ones((1, 2))
  v = model.init(KEY, x)
  np.testing.assert_allclose(model.apply(v, x), x)  # count.is_mutable() is False

  class Writes(nn.Module):
    @nn.compact
    def __call__(self, x):
      self.variable("state", "s", jnp.zeros, ()).value = x.sum()
      return x

  v = Writes().init(KEY, x)
  with pytest.raises(errors.ModifyScopeVariableError, match='"s".*"state"'):
    Writes().apply(v, x)


def test_missing_variables_name_path_and_collection():
  x = jnp.ones((1, 2))
  with pytest.raises(errors.ScopeCollectionNotFound, match="params"):
    Dense(2).apply({}, x)

  class Wrap(nn.Module):
    @nn.compact
    def __call__(self, x):
      return Dense(2, name="inner")(x)

  with pytest.raises(errors.ScopeParamNotFoundError, match='"kernel" exists in "/inner"'):
    Wrap().apply({"params": {"inner": {}}}, x)
  with pytest.raises(errors.ScopeCollectionNotFound, match='"batch_stats"'):
    Counter().apply({"params": {}}, x)


def test_params_passed_without_collection_layer():
  v = Dense(2).init(KEY, jnp.ones((1, 2)))
  with pytest.raises(errors.ApplyScopeInvalidVariablesStructureError, match="'params'"):
    Dense(2).apply(v["params"], jnp.ones((1, 2)))


def test_sow_and_capture_intermediates():
  class Sower(nn.Module):
    @nn.compact
    def __call__(self, x):
      h = Dense(3)(x)
      self.sow("intermediates", "h", h)
      self.sow("intermediates", "h", 2 * h)
      self.sow("stats", "total", h.sum(), reduce_fn=lambda a, b: a + b, init_fn=lambda: 0.0)
      return h

  model = Sower()
  x = jnp.ones((1, 2))
  v = model.init(KEY, x)
  assert set(v) == {"params", "stats"}  # init does not keep intermediates by default
  y, state = model.apply(v, x, mutable=["intermediates"])
  h1, h2 = state["intermediates"]["h"]
  np.testing.assert_allclose(h2, 2 * h1)
  np.testing.assert_allclose(h1, y)
  assert model.apply(v, x).shape == (1, 3)  # sow is a no-op when immutable

  _, state = model.apply(v, x, capture_intermediates=True)
  inter = state["intermediates"]
  assert set(inter) == {"h", "Dense_0", "__call__"}
  np.testing.assert_allclose(inter["Dense_0"]["__call__"][0], y)

  only_dense = lambda mdl, method: isinstance(mdl, Dense)
  _, state = model.apply(v, x, capture_intermediates=only_dense)
  assert set(state["intermediates"]) == {"h", "Dense_0"}


def test_perturb_gives_gradients_of_intermediates():
  class Perturbed(nn.Module):
    @nn.compact
    def __call__(self, x):
      h = self.perturb("h", Dense(2)(x))
      return (h**2).sum()

  model = Perturbed()
  x = jnp.ones((1, 3))
  v = model.init(KEY, x)
  assert jax.tree.map(jnp.shape, v["perturbations"]) == {"h": (1, 2)}
  grads = jax.grad(lambda p: model.apply({"params": v["params"], "perturbations": p}, x))(
    v["perturbations"])
  h = x @ v["params"]["Dense_0"]["kernel"]
  np.testing.assert_allclose(grads["h"], 2 * h, rtol=1e-6)
  assert float(model.apply({"params": v["params"]}, x)) == pytest.approx(float((h**2).sum()))


def test_method_argument_forms():
  class Coder(nn.Module):
    def setup(self):
      self.enc = Dense(2)
      self.dec = Dense(3)

    def encode(self, x):
      return self.enc(x)

    def decode(self, z):
      return self.dec(z)

    def __call__(self, x):
      return self.decode(self.encode(x))

  model = Coder()
  x = jnp.ones((1, 3))
  v = model.init(KEY, x)
  z = model.apply(v, x, method="encode")
  np.testing.assert_allclose(model.apply(v, x, method=model.encode), z)
  np.testing.assert_allclose(model.apply(v, x, method=Coder.encode), z)
  np.testing.assert_allclose(model.apply(v, x, method=lambda m, x: m.enc(x)), z)
  only_dec = model.init(KEY, z, method="decode")
  assert set(only_dec["params"]) == {"dec"}
  with pytest.raises(errors.ApplyModuleInvalidMethodError, match="nope"):
    model.apply(v, x, method="nope")


def test_apply_method_names_a_field_submodule():
  # method="inner" calls the submodule held in the field, with the outer module's variables
  class Holder(nn.Module):
    inner: nn.Module

    @nn.compact
    def __call__(self, x):
      return self.inner(x) + 1

  model = Holder(nn.Dense(2))
  x = jnp.ones((1, 3))
  v = model.init(KEY, x)
  p = v["params"]["inner"]
  np.testing.assert_allclose(model.apply(v, x, method="inner"), x @ p["kernel"] + p["bias"],
                             rtol=1e-6)


def test_make_rng_is_path_and_count_based():
  class Draw(nn.Module):
    @nn.compact
    def __call__(self):
      return self.make_rng("noise"), self.make_rng("noise")

  class Two(nn.Module):
    order: tuple

    def setup(self):
      self.a = Draw()
      self.b = Draw()

    def __call__(self):
      return {n: getattr(self, n)() for n in self.order}

  rngs = {"noise": jax.random.key(1)}
  ab = Two(("a", "b")).apply({}, rngs=rngs)
  ba = Two(("b", "a")).apply({}, rngs=rngs)
  data = lambda k: jax.random.key_data(k).tolist()
  assert data(ab["a"][0]) == data(ba["a"][0]) and data(ab["b"][1]) == data(ba["b"][1])
  keys = [data(k) for pair in ab.values() for k in pair]
  assert len({str(k) for k in keys}) == 4  # distinct per path and per draw
  raw = Two(("a",)).apply({}, rngs={"noise": jax.random.PRNGKey(1)})
  assert raw["a"][0].dtype == jnp.uint32 and raw["a"][0].shape == (2,)


def test_rng_errors_and_params_fallback():
  class Drop(nn.Module):
    @nn.compact
    def __call__(self):
      return self.has_rng("params"), self.has_rng("dropout"), self.make_rng("dropout")

  has_params, has_dropout, _ = Drop().apply({}, rngs={"params": KEY})  # falls back to params
  assert has_params and not has_dropout
  with pytest.raises(errors.InvalidRngError, match='"dropout"'):
    Drop().apply({})
  with pytest.raises(errors.InvalidRngError, match="PRNG key"):
    Dense(2).init({"params": 0}, jnp.ones((1, 2)))
  with pytest.raises(errors.InvalidRngError, match="dict"):
    Dense(2).apply({}, jnp.ones((1, 2)), rngs=3)
  assert Dense(2).apply({}, jnp.ones((1, 2)), rngs=KEY, mutable=True)[0].shape == (1, 2)
  with pytest.raises(errors.ApplyScopeInvalidVariablesTypeError, match="list"):
    Dense(2).apply([1], jnp.ones((1, 2)))


def test_init_and_apply_accept_raw_and_typed_keys():
  x = jnp.ones((1, 4))
  typed = Dense(3).init(jax.random.key(0), x)
  raw = Dense(3).init(jax.random.PRNGKey(0), x)
  assert typed["params"]["kernel"].shape == raw["params"]["kernel"].shape == (4, 3)
  again = Dense(3).init({"params": jax.random.key(0)}, x)
  np.testing.assert_array_equal(typed["params"]["kernel"], again["params"]["kernel"])


def test_is_initializing_and_init_mutable_filter():
  seen = []

  class Flag(nn.Module):
    @nn.compact
    def __call__(self, x):
      seen.append(self.is_initializing())
      self.sow("intermediates", "x", x)
      return x

  v = Flag().init(KEY, 1.0)
  assert v == {} and seen == [True]
  y, out = Flag().init_with_output(KEY, 2.0, mutable=DenyList(()))
  assert y == 2.0 and out["intermediates"]["x"] == (2.0,)
  Flag().apply({}, 1.0, mutable=True)
  assert seen[-1] is False


def test_apply_adds_no_operations_to_the_jaxpr():
  class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
      h = jax.nn.relu(Dense(4)(x))
      return Dense(3)(h)

  x = jnp.ones((2, 5))
  v = MLP().init(KEY, x)

  def plain(params, x):
    return jax.nn.relu(x @ params["Dense_0"]["kernel"]) @ params["Dense_1"]["kernel"]

  ours = jax.make_jaxpr(lambda p, x: MLP().apply({"params": p}, x))(v["params"], x)
  ref = jax.make_jaxpr(plain)(v["params"], x)
  assert [e.primitive for e in ours.eqns] == [e.primitive for e in ref.eqns]


def test_param_shape_check_with_non_shape_initializer_args():
  class Custom(nn.Module):
    n: int

    @nn.compact
    def __call__(self):
      return self.param("table", lambda key, n: jnp.zeros((n, 2)), self.n)

  v = Custom(3).init(KEY)
  assert Custom(3).apply(v).shape == (3, 2)
  with pytest.raises(errors.ScopeParamShapeError, match=r"\(4, 2\).*\(3, 2\)"):
    Custom(4).apply(v)


def test_boxed_params_are_unboxed_for_the_module():
  class Boxed(nn.Module):
    @nn.compact
    def __call__(self, x):
      init = nn.with_partitioning(jax.nn.initializers.ones, ("in", "out"))
      return x @ self.param("w", init, (x.shape[-1], 2))

  x = jnp.ones((1, 3))
  v = Boxed().init(KEY, x)
  assert isinstance(v["params"]["w"], nn.Partitioned)
  assert v["params"]["w"].names == ("in", "out")
  np.testing.assert_allclose(Boxed().apply(v, x), [[3.0, 3.0]])


def test_merge_param():
  assert nn.merge_param("train", None, True) is True
  with pytest.raises(errors.MergeParamError, match="both"):
    nn.merge_param("train", False, True)


def test_lazy_init_from_shapes_matches_init():
  x = jnp.ones((2, 5))
  lazy = Dense(3).lazy_init(KEY, jax.ShapeDtypeStruct(x.shape, x.dtype))
  eager = Dense(3).init(KEY, x)
  np.testing.assert_allclose(lazy["params"]["kernel"], eager["params"]["kernel"], rtol=1e-6)


def test_copy_adopts_into_the_defining_module():
  class UsesCopy(nn.Module):
    template: nn.Module

    @nn.compact
    def __call__(self, x):
      return self.template.copy(features=2)(x)

  v = UsesCopy(Dense(7)).init(KEY, jnp.ones((1, 3)))
  assert jax.tree.map(jnp.shape, v["params"]) == {"Dense_0": {"kernel": (3, 2)}}


def test_named_call_names_the_traced_operations():
  x = jnp.ones((1, 3))
  v = Dense(2, name="proj").init(KEY, x)
  trace = lambda: jax.make_jaxpr(lambda v: Dense(2, name="proj").apply(v, x))(v)
  with nn.override_named_call(True):
    named = trace()
  plain = trace()
  assert "proj" in str(named.eqns[0].source_info.name_stack)
  assert "proj" not in str(plain.eqns[0].source_info.name_stack)
