"""Module construction, setup, naming, binding and cloning."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flaxen.linen as nn
from flaxen import errors
from flaxen.core import freeze

KEY = jax.random.key(0)


class Dense(nn.Module):
  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    y = x @ self.param("kernel", jax.nn.initializers.ones, (x.shape[-1], self.features))
    if self.use_bias:
      y = y + self.param("bias", jax.nn.initializers.zeros, (self.features,))
    return y


def param_tree(variables):
  return jax.tree.map(jnp.shape, variables["params"])


# ------------------------------------------------------------------ dataclass behaviour


def test_fields_constructor_and_class_constants():
  class Block(nn.Module):
    width: int
    depth: int = 2
    kind = "block"  # unannotated: a class constant, not a field

  b = Block(3, depth=4, name="b")
  assert (b.width, b.depth, b.name, b.kind) == (3, 4, "b", "block")
  assert [f.name for f in dataclasses.fields(b)][:2] == ["width", "depth"]
  assert "kind" not in {f.name for f in dataclasses.fields(b)}
  with pytest.raises(TypeError):
    Block(3, 4, None, "name-is-keyword-only")


def test_modules_are_hashable_and_equal_by_attributes():
  assert Dense(3) == Dense(3) and hash(Dense(3)) == hash(Dense(3))
  assert Dense(3) != Dense(4) and Dense(3) != Dense(3, name="x")
  assert len({Dense(3), Dense(3), Dense(4)}) == 2


def test_top_level_module_takes_assignments_until_attached():
  # As in Flax: a module with no parent is not attached yet, so it may still be changed
  d = Dense(3)
  assert d.clone(features=4).features == 4 and d.features == 3
  d.features = 4
  assert d.features == 4
  assert Dense(4).init(KEY, jnp.ones((1, 2)))["params"]["kernel"].shape == (2, 4)
  bound = d.bind(d.init(KEY, jnp.ones((1, 2))))
  with pytest.raises(errors.SetAttributeFrozenModuleError, match="features"):
    bound.features = 5

  class Outer(nn.Module):
    bars: tuple = ()

    def __call__(self, x):
      for bar in self.bars:
        x = bar(x)
      return x

  outer = Outer()
  outer.bars = [Dense(2)]  # assigned on the top-level module, then adopted when bound
  variables = outer.init(KEY, jnp.ones((1, 2)))
  assert outer.bind(variables).bars[0].scope is not None
  assert variables["params"]["bars_0"]["kernel"].shape == (2, 2)


def test_bound_module_is_frozen_outside_setup():
  class Sets(nn.Module):
    @nn.compact
    def __call__(self, x):
      self.cache = x
      return x

  with pytest.raises(errors.SetAttributeFrozenModuleError, match="cache"):
    Sets().init(KEY, jnp.ones(2))


def test_reserved_field_names_are_rejected():
  with pytest.raises(errors.ReservedModuleAttributeError, match="parent"):
    class Bad(nn.Module):  # noqa: F841
      parent: int


def test_post_init_may_compute_attributes():
  class Derived(nn.Module):
    width: int

    def __post_init__(self):
      self.double = 2 * self.width
      super().__post_init__()

  assert Derived(3).double == 6 and Derived(3).clone(width=5).double == 10


# ------------------------------------------------------------------------ setup naming


def test_setup_names_lists_and_dicts_after_the_attribute():
  class Stack(nn.Module):
    def setup(self):
      self.layers = [Dense(2), Dense(3)]
      self.heads = {"a": Dense(1), "b": Dense(4)}

    def __call__(self, x):
      for layer in self.layers:
        x = layer(x)
      return self.heads["a"](x) + self.heads["b"](x).sum()

  v = Stack().init(KEY, jnp.ones((1, 2)))
  assert set(v["params"]) == {"layers_0", "layers_1", "heads_a", "heads_b"}
  assert param_tree(v)["layers_1"]["kernel"] == (2, 3)


def test_setup_submodule_bound_on_assignment_and_setup_runs_once():
  calls = []

  class Lazy(nn.Module):
    def setup(self):
      calls.append(1)
      self.inner = Dense(2)
      assert self.inner.scope is not None  # bound on assignment

    def __call__(self, x):
      return self.inner(x) + self.inner(x)

  Lazy().init(KEY, jnp.ones((1, 3)))
  assert calls == [1]


def test_submodule_fields_are_named_after_the_field():
  class Wrapper(nn.Module):
    inner: nn.Module
    layers: tuple

    def __call__(self, x):
      for layer in self.layers:
        x = layer(x)
      return self.inner(x)

  model = Wrapper(Dense(1), (Dense(3), Dense(2)))
  v = model.init(KEY, jnp.ones((1, 4)))
  assert param_tree(v) == {
    "inner": {"kernel": (2, 1), "bias": (1,)},
    "layers_0": {"kernel": (4, 3), "bias": (3,)},
    "layers_1": {"kernel": (3, 2), "bias": (2,)},
  }
  assert model.inner.scope is None  # the user's module was copied, not bound


# ---------------------------------------------------------------------- compact naming


def test_compact_auto_and_explicit_names():
  class Mixed(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = Dense(2)(x)
      x = Dense(2, name="middle")(x)
      return Dense(1)(x)

  assert set(Mixed().init(KEY, jnp.ones((1, 2)))["params"]) == {"Dense_0", "middle", "Dense_1"}


def test_compact_module_called_twice_shares_params():
  class Twice(nn.Module):
    @nn.compact
    def __call__(self, x):
      return Dense(2)(x)

  class Outer(nn.Module):
    def setup(self):
      self.t = Twice()

    def __call__(self, x):
      return self.t(x) + self.t(x)

  v = Outer().init(KEY, jnp.ones((1, 2)))
  assert param_tree(v) == {"t": {"Dense_0": {"kernel": (2, 2), "bias": (2,)}}}


def test_duplicate_explicit_name_in_one_call():
  class Dup(nn.Module):
    @nn.compact
    def __call__(self, x):
      return Dense(2, name="d")(x) + Dense(2, name="d")(x)

  with pytest.raises(errors.NameInUseError, match='"d"'):
    Dup().init(KEY, jnp.ones((1, 2)))


def test_setup_and_compact_cannot_share_a_name():
  class Both(nn.Module):
    def setup(self):
      self.d = Dense(2)

    @nn.compact
    def __call__(self, x):
      return Dense(2, name="d")(x)

  with pytest.raises(errors.NameInUseError, match="setup"):
    Both().init(KEY, jnp.ones((1, 2)))


def test_param_and_submodule_cannot_share_a_name():
  class Clash(nn.Module):
    @nn.compact
    def __call__(self, x):
      y = Dense(2, name="w")(x)
      return y * self.param("w", jax.nn.initializers.ones, (2,))

  with pytest.raises(errors.NameInUseError, match="param"):
    Clash().init(KEY, jnp.ones((1, 2)))


def test_several_compact_methods_share_the_naming_cursor():
  class Two(nn.Module):
    @nn.compact
    def __call__(self, x):
      return self.decode(nn.Dense(3)(x))

    @nn.compact
    def decode(self, x):
      return nn.Dense(2)(x)

  x = jnp.ones((1, 4))
  variables = Two().init(KEY, x)
  p = variables["params"]
  assert p["Dense_0"]["kernel"].shape == (4, 3) and p["Dense_1"]["kernel"].shape == (3, 2)
  ref = (x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]) @ p["Dense_1"]["kernel"]
  ref = ref + p["Dense_1"]["bias"]
  assert jnp.allclose(Two().apply(variables, x), ref, atol=1e-6)  # fp32 matmuls


def test_submodule_outside_setup_or_compact():
  class NotCompact(nn.Module):
    def __call__(self, x):
      return Dense(2)(x)

  with pytest.raises(errors.AssignSubModuleError, match="Dense"):
    NotCompact().init(KEY, jnp.ones((1, 2)))


def test_compact_call_on_unbound_module():
  with pytest.raises(errors.CallCompactUnboundModuleError, match="apply"):
    Dense(2)(jnp.ones((1, 2)))


def test_param_outside_setup_or_compact():
  class Plain(nn.Module):
    def __call__(self, x):
      return x * self.param("w", jax.nn.initializers.ones, (2,))

  with pytest.raises(errors.InitializationOutsideSetupError, match="'w'"):
    Plain().init(KEY, jnp.ones(2))


def test_helper_methods_and_nowrap():
  class Helpers(nn.Module):
    @nn.nowrap
    def make(self, n):
      return Dense(n)

    def hidden(self, x):  # a wrapped helper called from the compact method
      return Dense(3)(x)

    @nn.compact
    def __call__(self, x):
      return self.make(1)(self.hidden(x))

  assert Helpers.make.__name__ == "make" and not hasattr(Helpers.make, "_flaxen_wrapped")
  assert set(Helpers().init(KEY, jnp.ones((1, 2)))["params"]) == {"Dense_0", "Dense_1"}


# ------------------------------------------------------------------ binding and cloning


def test_bind_unbind_clone():
  model = Dense(2)
  v = model.init(KEY, jnp.ones((1, 3)))
  bound = model.bind(freeze(v))
  assert bound.scope is not None and model.scope is None
  np.testing.assert_allclose(bound(jnp.ones((1, 3))), [[3.0, 3.0]])
  assert jax.tree.map(jnp.shape, bound.variables) == {"params": {"kernel": (3, 2), "bias": (2,)}}
  unbound, variables = bound.unbind()
  assert unbound.scope is None and unbound == model
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, v)
  with pytest.raises(errors.CallUnbindOnUnboundModuleError):
    model.unbind()
  clone = bound.clone(features=5)
  assert clone.scope is None and clone.features == 5 and bound.features == 2


def test_path_and_scope_of_submodules():
  seen = {}

  class Leaf(nn.Module):
    @nn.compact
    def __call__(self, x):
      seen["path"] = self.path
      seen["parent"] = type(self.parent).__name__
      return x

  class Root(nn.Module):
    def setup(self):
      self.branch = Leaf()

    def __call__(self, x):
      return self.branch(x)

  Root().init(KEY, 1.0)
  assert seen == {"path": ("branch",), "parent": "Root"}
  with pytest.raises(errors.UnboundModuleError):
    Leaf().path


def test_share_scope():
  class Shared(nn.Module):
    def setup(self):
      self.inner = Dense(2)
      nn.share_scope(self, self.inner)

    def __call__(self, x):
      return self.inner(x)

  assert param_tree(Shared().init(KEY, jnp.ones((1, 3)))) == {"kernel": (3, 2), "bias": (2,)}


def test_intercept_methods_nest_and_can_change_arguments():
  calls = []

  def log(next_fun, args, kwargs, context):
    calls.append((type(context.module).__name__, context.method_name))
    return next_fun(*args, **kwargs)

  def double_input(next_fun, args, kwargs, context):
    if isinstance(context.module, Dense):
      args = (2 * args[0],)
    return next_fun(*args, **kwargs)

  class Outer(nn.Module):
    @nn.compact
    def __call__(self, x):
      return Dense(1, use_bias=False)(x)

  x = jnp.ones((1, 2))
  v = Outer().init(KEY, x)
  with nn.intercept_methods(log), nn.intercept_methods(double_input):
    y = Outer().apply(v, x)
  assert calls == [("Outer", "__call__"), ("Dense", "__call__")]
  np.testing.assert_allclose(y, [[4.0]])
  np.testing.assert_allclose(Outer().apply(v, x), [[2.0]])  # no interceptor outside


def test_intercept_methods_order_orig_method_and_setup():
  def apply_after(op):
    return lambda next_fun, args, kwargs, context: op(next_fun(*args, **kwargs))

  class Identity(nn.Module):
    def __call__(self, x):
      return x

  # the first interceptor entered is the outermost (as in Flax)
  with nn.intercept_methods(apply_after(lambda a: a + 1)), \
       nn.intercept_methods(apply_after(lambda a: a ** 2)):
    assert Identity()(7) == 7 ** 2 + 1

  seen = []

  def check(next_fun, args, kwargs, context):
    seen.append(context.orig_method(3))  # the method bound to the module, no interceptors
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(check):
    assert Identity()(5) == 5
  assert seen == [3]

  class WithSetup(nn.Module):
    def setup(self):
      self.layer = Dense(2)

    def __call__(self, x):
      return self.layer(x)

  log = []

  def record(next_fun, args, kwargs, context):
    log.append((type(context.module).__name__, context.method_name))
    return next_fun(*args, **kwargs)

  x = jnp.ones((1, 3))
  v = WithSetup().init(KEY, x)
  with nn.intercept_methods(record):
    WithSetup().apply(v, x)
  # setup runs (intercepted) before the method that triggers it
  assert log == [("WithSetup", "setup"), ("WithSetup", "__call__"), ("Dense", "__call__")]


def test_pickle_and_copy_of_unbound_modules():
  import copy
  import pickle

  d = Dense(3, name="d")
  assert pickle.loads(pickle.dumps(d)) == d
  assert copy.deepcopy(d) == d and copy.copy(d).features == 3


def test_function_valued_fields_are_not_wrapped_as_methods():
  def my_init(key, shape, dtype=jnp.float32):
    return jnp.full(shape, 2.0, dtype)

  class WithInit(nn.Module):
    kernel_init: object = my_init

    @nn.compact
    def __call__(self, x):
      return x * self.param("k", self.kernel_init, x.shape)

  assert WithInit.kernel_init is my_init
  np.testing.assert_allclose(WithInit().init_with_output(KEY, jnp.ones(2))[0], [2.0, 2.0])


def test_post_init_without_super_is_reported():
  class Forgetful(nn.Module):
    def __post_init__(self):
      pass

    def __call__(self, x):
      return x

  with pytest.raises(errors.IncorrectPostInitOverrideError, match="super"):
    Forgetful().init(KEY, 1.0)


def test_subclassing_a_module_keeps_fields_and_wrapping():
  class Scaled(Dense):
    scale: float = 2.0

    @nn.compact
    def __call__(self, x):
      return self.scale * super().__call__(x)

  m = Scaled(3, scale=3.0, name="s")
  assert (m.features, m.use_bias, m.scale, m.name) == (3, True, 3.0, "s")
  x = jnp.ones((1, 2))
  y, v = m.init_with_output(KEY, x)
  assert jax.tree.map(jnp.shape, v["params"]) == {"kernel": (2, 3), "bias": (3,)}
  np.testing.assert_allclose(y, 3.0 * 2.0 * np.ones((1, 3)))
  m.scale = 1.0  # top level, not attached: allowed (as in Flax)
  assert m.scale == 1.0


class Other(nn.Module):
  @nn.compact
  def __call__(self, x):
    return x * self.param("s", jax.nn.initializers.ones, ())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([None, "a", "b"])), max_size=6))
def test_auto_names_follow_creation_order_per_class(spec):
  # Expected names: explicit ones as given; ClassName_N counting per class, skipping taken.
  expected, taken, counters = [], set(), {}
  for use_dense, explicit in spec:
    cls_name = "Dense" if use_dense else "Other"
    if explicit is not None:
      if explicit in taken:
        return  # a duplicate explicit name is an error, tested elsewhere
      name = explicit
    else:
      i = counters.get(cls_name, 0)
      while f"{cls_name}_{i}" in taken:
        i += 1
      counters[cls_name] = i + 1
      name = f"{cls_name}_{i}"
    taken.add(name)
    expected.append(name)

  class Build(nn.Module):
    @nn.compact
    def __call__(self, x):
      for use_dense, explicit in spec:
        layer = Dense(1, name=explicit) if use_dense else Other(name=explicit)
        x = layer(x).sum(keepdims=True)
      return x

  v = Build().init(KEY, jnp.ones((1, 1)))
  assert list(v.get("params", {})) == expected


def test_setup_cannot_reassign_construction_attributes():
  class Reassigns(nn.Module):
    width: int = 2

    def setup(self):
      self.width = 3

    def __call__(self, x):
      return x

  with pytest.raises(errors.SetAttributeInModuleSetupError, match="'width'"):
    Reassigns().init(KEY, 1.0)


def test_same_variable_name_in_two_collections_is_fine_in_one_is_not():
  class Two(nn.Module):
    same_col: bool

    @nn.compact
    def __call__(self, x):
      a = self.variable("c1", "v", jnp.zeros, x.shape)
      b = self.variable("c1" if self.same_col else "c2", "v", jnp.ones, x.shape)
      return x + a.value + b.value

  x = jnp.zeros((2,))
  variables = Two(False).init(KEY, x)
  assert set(variables) == {"c1", "c2"}
  np.testing.assert_array_equal(Two(False).apply(variables, x), jnp.ones(2))
  with pytest.raises(errors.NameInUseError):
    Two(True).init(KEY, x)


def test_field_submodules_of_the_top_module_are_bound_when_it_is():
  class B(nn.Module):
    def setup(self):
      self.p = self.param("p", lambda k: jnp.full((2,), 3.0))

    def fn(self, x):
      return self.p + x

  class A(nn.Module):
    b: nn.Module

    def __call__(self, x):
      return self.b.fn(x)

  a = A(b=B())
  x = jnp.ones((2,))
  variables = nn.init(lambda m, x: m(x), a)(KEY, x)
  y = nn.apply(lambda m, x: m.b.fn(x), a)(variables, x)  # reached from outside, bound
  np.testing.assert_array_equal(y, jnp.full((2,), 4.0))


def test_field_submodules_are_bound_with_their_holder():
  class Foo(nn.Module):
    def setup(self):
      self.seq = nn.Sequential([nn.Dense(3), nn.Dense(4)])

    def __call__(self, x):
      return self.seq.layers[0](x)  # the Sequential's own setup has not run yet

  x = jnp.ones((1, 2))
  variables = Foo().init(KEY, x)
  p = variables["params"]["seq"]["layers_0"]
  np.testing.assert_allclose(Foo().apply(variables, x), x @ p["kernel"] + p["bias"],
                             rtol=1e-6)  # fp32 matmul


def test_init_of_a_bound_submodule_holds_its_field_submodules():
  class Leaf(nn.Module):
    def setup(self):
      self.b = self.param("b", lambda k: jnp.full((), 2.0))

    def __call__(self, x):
      return x * self.b

  class Holder(nn.Module):
    leaf: nn.Module

    def __call__(self, x):
      return self.leaf(x)

  class Top(nn.Module):
    def setup(self):
      self.holder = Holder(leaf=Leaf())

    def __call__(self, x):
      return self.holder.init_with_output(KEY, x)  # a separate init, from inside

  (y, inner), outer = Top().init_with_output(KEY, jnp.ones(()))
  assert float(y) == 2.0 and inner == {"params": {"leaf": {"b": 2.0}}} and outer == {}


def test_share_scope_moves_field_submodules_along():
  class Grand(nn.Module):
    @nn.compact
    def __call__(self):
      return nn.Dense(2)(jnp.zeros(3))

  class Child(nn.Module):
    child: nn.Module

    @nn.compact
    def __call__(self):
      return self.child()

  class Parent(nn.Module):
    main: nn.Module

    def setup(self):
      nn.share_scope(self, self.main)

    def __call__(self):
      return self.main()

  params = Parent(Child(Grand())).init(KEY)["params"]
  assert list(params) == ["child"] and params["child"]["Dense_0"]["kernel"].shape == (3, 2)


def test_unspecified_parent_stays_one_object_when_copied_or_pickled():
  import copy
  import inspect
  import pickle

  default = inspect.signature(nn.Dense).parameters["parent"].default
  assert copy.copy(default) is default and copy.deepcopy(default) is default
  assert pickle.loads(pickle.dumps(default)) is default
  dense = copy.deepcopy(nn.Dense(2))
  y, _ = dense.init_with_output(jax.random.key(0), jnp.ones(3))
  assert y.shape == (2,)


def test_parent_and_name_are_the_last_fields_after_inheritance():
  class Base(nn.Module):
    a: int

  class Child(Base):
    b: int = 2

  assert [f.name for f in dataclasses.fields(Child)] == ["a", "b", "parent", "name"]
  child = Child(1, 3, name="c")
  assert (child.a, child.b, child.name) == (1, 3, "c")
  assert child.clone(b=4).b == 4 and child.clone(b=4).a == 1
