"""nnx.jit: in-place updates, structural changes, sharing, outputs, options, caching."""

import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import nnx


class Counter(nnx.Module):
  def __init__(self):
    self.count = nnx.BatchStat(jnp.array(0))
    self.w = nnx.Param(jnp.ones(2))

  def __call__(self, x):
    self.count.value += 1
    return self.w * x


def test_mutations_are_applied_and_cache_is_reused():
  traces = []

  @nnx.jit
  def step(m, x):
    traces.append(1)
    return m(x)

  m = Counter()
  for i in range(1, 4):
    np.testing.assert_array_equal(step(m, jnp.full(2, i)), jnp.full(2, i))
    assert int(m.count.value) == i
  assert len(traces) == 1 and len(step._entries) == 1
  other = Counter()  # same structure: same compiled function, no new trace
  step(other, jnp.full(2, 1))
  assert len(traces) == 1 and len(step._entries) == 2 and int(other.count.value) == 1


def test_graph_nodes_anywhere_in_args_and_kwargs():
  @nnx.jit
  def step(models, *, extra):
    for m in models["list"]:
      m(1.0)
    extra(1.0)

  a, b, c = Counter(), Counter(), Counter()
  step({"list": [a, b]}, extra=c)
  step({"list": [a, b]}, extra=c)
  assert [int(m.count.value) for m in (a, b, c)] == [2, 2, 2]


def test_structural_change_inside_is_applied_and_invalidates_cache():
  @nnx.jit
  def grow(m):
    m.new = nnx.Param(m.w.value * 2)
    m.layer = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    m.flag = True

  m = Counter()
  w = m.w
  grow(m)
  assert m.w is w and isinstance(m.new, nnx.Param) and m.flag is True
  np.testing.assert_array_equal(m.new.value, 2 * jnp.ones(2))
  assert m.layer.kernel.value.shape == (2, 1)
  assert not grow._entries


def test_replaced_submodule_and_shared_reference_updates():
  class Holder(nnx.Module):
    def __init__(self):
      self.a = Counter()
      self.b = self.a

  @nnx.jit
  def retie(h):
    h.b = Counter()
    h.b.w.value = jnp.zeros(2)
    h.a.w.value = h.a.w.value + 1

  h = Holder()
  a = h.a
  retie(h)
  assert h.a is a and h.b is not a
  np.testing.assert_array_equal(h.a.w.value, 2 * jnp.ones(2))
  np.testing.assert_array_equal(h.b.w.value, jnp.zeros(2))


def test_shared_objects_across_arguments_stay_shared():
  m = Counter()

  @nnx.jit
  def step(m1, m2):
    m1.w.value = m1.w.value + 1
    return m2.w.value

  out = step(m, m)
  np.testing.assert_array_equal(out, 2 * jnp.ones(2))
  np.testing.assert_array_equal(m.w.value, 2 * jnp.ones(2))


def test_outputs_may_contain_graph_objects():
  @nnx.jit
  def create(seed):
    return nnx.Linear(2, 3, rngs=nnx.Rngs(seed)), seed + 1

  layer, nxt = create(0)
  assert isinstance(layer, nnx.Linear) and int(nxt) == 1
  np.testing.assert_array_equal(layer.kernel.value,
                                nnx.Linear(2, 3, rngs=nnx.Rngs(0)).kernel.value)

  m = Counter()
  same, _ = nnx.jit(lambda m: (m, m(1.0)))(m)
  assert same is m and int(m.count.value) == 1


def test_external_structural_change_is_seen_on_next_call():
  @nnx.jit
  def total(m):
    return sum(jnp.sum(v.value) for _, v in nnx.state(m, nnx.Param).flat_state())

  m = Counter()
  assert float(total(m)) == 2.0
  m.extra = nnx.Param(jnp.full(3, 2.0))
  assert float(total(m)) == 8.0
  m.extra.value = jnp.zeros(3)  # a new value only: cached walk still valid
  assert float(total(m)) == 2.0
  del m.extra
  assert float(total(m)) == 2.0
  lst = nnx.List([Counter()])
  assert float(total(lst)) == 2.0
  lst.append(Counter())
  assert float(total(lst)) == 4.0


def test_static_argnums_and_argnames():
  @nnx.jit
  def plain(m, x):
    return m(x)

  @nnx.jit(static_argnums=1, static_argnames="power")
  def step(m, n, *, power):
    return m(jnp.ones(2)) ** power * n

  m = Counter()
  np.testing.assert_array_equal(step(m, 3, power=2), jnp.full(2, 3.0))
  assert int(m.count.value) == 1
  np.testing.assert_array_equal(plain(m, 2.0), jnp.full(2, 2.0))


def test_donate_argnums_with_graph_argument():
  @nnx.jit(donate_argnums=0)
  def step(m):
    m.w.value = m.w.value + 1

  m = Counter()
  step(m)
  step(m)
  np.testing.assert_array_equal(m.w.value, 3 * jnp.ones(2))


def test_non_graph_arguments_behave_like_jax_jit():
  f = nnx.jit(lambda x, y: {"s": x + y["a"]})
  out = f(jnp.ones(2), {"a": 2.0})
  np.testing.assert_array_equal(out["s"], jnp.full(2, 3.0))


def test_method_decoration():
  class M(Counter):
    @nnx.jit
    def run(self, x):
      return self(x)

  m = M()
  m.run(2.0)
  m.run(2.0)
  assert int(m.count.value) == 2


def test_raw_array_attributes_are_state():
  class Raw(nnx.Module):
    def __init__(self):
      self.total = jnp.zeros(())

  @nnx.jit
  def add(r, x):
    r.total = r.total + x

  r = Raw()
  add(r, 1.0)
  add(r, 2.0)
  assert float(r.total) == 3.0


def test_rng_counts_advance_through_jit():
  rngs = nnx.Rngs(0)

  @nnx.jit
  def draw(rngs):
    return jax.random.uniform(rngs.dropout())

  a, b = draw(rngs), draw(rngs)
  assert float(a) != float(b) and int(rngs.default.count.value) == 2
  expected = jax.random.uniform(jax.random.fold_in(jax.random.key(0), 1))
  assert float(b) == pytest.approx(float(expected))


def test_cache_does_not_keep_models_alive():
  @nnx.jit
  def step(m):
    m(1.0)

  m = Counter()
  ref = weakref.ref(m)
  step(m)
  assert len(step._entries) == 1
  del m
  gc.collect()
  assert ref() is None and not step._entries


def test_cache_is_bounded():
  from flaxen.nnx.transforms import jit as jit_module

  @nnx.jit
  def step(m):
    m(1.0)

  models = [Counter() for _ in range(jit_module._MAX_ENTRIES + 5)]
  for m in models:
    step(m)
  assert len(step._entries) == jit_module._MAX_ENTRIES


def test_shardings_pass_through():
  from jax.sharding import Mesh, NamedSharding, PartitionSpec

  replicated = NamedSharding(Mesh(jax.devices()[:1], ("d",)), PartitionSpec())
  step = nnx.jit(lambda m, x: m(x), in_shardings=(replicated, replicated),
                 out_shardings=replicated)
  out = step(Counter(), jnp.ones(2))
  assert out.sharding.is_equivalent_to(replicated, 1)


def test_metadata_change_inside_is_applied():
  @nnx.jit
  def tag(m):
    m.w.set_metadata(sharding=("x",))

  m = Counter()
  w = m.w
  tag(m)
  assert m.w is w and w.sharding == ("x",)


def test_variable_hooks_run_inside_jit():
  class Clipped(nnx.Variable):
    def on_set_value(self, value):
      return jnp.clip(value, -1.0, 1.0)

  v = Clipped(jnp.zeros(2))

  @nnx.jit
  def push(v, x):
    v.value = v.value + x

  push(v, 5.0)
  np.testing.assert_array_equal(v.value, jnp.ones(2))


def test_unhashable_metadata_keeps_fast_path():
  m = Counter()
  m.w.set_metadata(names=["a", "b"])  # a list: not hashable

  @nnx.jit
  def step(m):
    m(1.0)

  step(m)
  entry = next(iter(step._entries.values()))
  step(m)
  assert next(iter(step._entries.values())) is entry  # no structural change detected
  assert m.w.names == ["a", "b"] and int(m.count.value) == 2


def test_only_objects_known_to_a_cache_move_the_epoch():
  from flaxen.nnx import epoch

  @nnx.jit
  def step(m):
    m(1.0)

  m = Counter()
  step(m)
  before = epoch.current()
  fresh = Counter()
  fresh.extra = nnx.Param(1.0)
  nnx.Rngs(0)
  assert epoch.current() == before
  m.extra = nnx.Param(1.0)
  assert epoch.current() > before
  step(m)
  assert isinstance(m.extra, nnx.Param) and int(m.count.value) == 2


def test_unchanged_state_is_not_written_back():
  m = Counter()
  w, count = m.w.value, m.count.value
  infer = nnx.jit(lambda m, x: m.w * x)
  np.testing.assert_array_equal(infer(m, 2.0), 2 * jnp.ones(2))
  assert m.w.value is w and m.count.value is count
  step = nnx.jit(lambda m: m(1.0))
  step(m)
  step(m)
  assert m.w.value is w and int(m.count.value) == 2
  scalar = nnx.Variable(3)  # a Python int stays a Python int when not touched
  nnx.jit(lambda v, c: c(1.0))(scalar, m)
  assert scalar.value == 3 and type(scalar.value) is int


def test_donation_keeps_unchanged_state_valid():
  m = Counter()

  @nnx.jit(donate_argnums=0)
  def step(m):
    return m(1.0)

  step(m)
  step(m)
  np.testing.assert_array_equal(m.w.value, jnp.ones(2))
  assert int(m.count.value) == 2


def test_argument_shortcut_agrees_with_full_walk():
  from flaxen.nnx.transforms import lift

  m, x = Counter(), jnp.ones(2)
  for args, kwargs in [((m, x, x), {}), ((x, m), {}), ((m, None, 1.0), {}), ((m,), {"k": x}),
                       (([m, x],), {})]:
    fast = lift.find_arg_nodes(args, kwargs)
    full = lift.find_nodes((args, kwargs))
    assert fast[1] == full[1] and fast[2] == full[2] and all(
      a is b for a, b in zip(fast[0], full[0], strict=True))
