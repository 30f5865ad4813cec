"""nnx.scan against jax.lax.scan / Python loops on plain arrays."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx

X = jnp.asarray(np.random.RandomState(0).randn(3, 4), jnp.float32)


@nnx.split_rngs(splits=5)
@nnx.vmap(in_axes=(0,), out_axes=0)
def create_stack(rngs):
  return nnx.Linear(4, 4, rngs=rngs)


@nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
def forward(x, layer):
  return jnp.tanh(layer(x))


def _loop(kernels, biases, x):
  for k, b in zip(kernels, biases, strict=True):
    x = jnp.tanh(x @ k + b)
  return x


def test_layer_stack_matches_python_loop_over_slices():
  stack = create_stack(nnx.Rngs(0))
  kernel = stack.kernel.value
  y = forward(X, stack)
  np.testing.assert_allclose(y, _loop(stack.kernel.value, stack.bias.value, X), rtol=1e-5)
  np.testing.assert_array_equal(stack.kernel.value, kernel)  # read-only: unchanged


def test_gradient_of_scanned_stack_matches_jax():
  stack = create_stack(nnx.Rngs(0))
  grads = nnx.grad(lambda m: (forward(X, m) ** 2).sum())(stack)
  ref = jax.grad(lambda k, b: (_loop(k, b, X) ** 2).sum(), argnums=(0, 1))(
    stack.kernel.value, stack.bias.value)
  np.testing.assert_allclose(grads.kernel.value, ref[0], rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(grads.bias.value, ref[1], rtol=1e-4, atol=1e-6)


def test_scan_inside_jit_with_carry_and_stacked_outputs():
  stack = create_stack(nnx.Rngs(0))

  @nnx.jit
  def run(m, x):
    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
    def body(x, layer):
      y = layer(x)
      return y, y.sum()
    return body(x, m)

  y, sums = run(stack, X)

  def ref_body(x, kb):
    y = x @ kb[0] + kb[1]
    return y, y.sum()
  ref_y, ref_sums = jax.lax.scan(ref_body, X, (stack.kernel.value, stack.bias.value))
  np.testing.assert_allclose(y, ref_y, rtol=1e-5)
  np.testing.assert_allclose(sums, ref_sums, rtol=1e-5)


class Accumulator(nnx.Module):
  def __init__(self):
    self.total = nnx.BatchStat(jnp.zeros(()))
    self.scale = nnx.Param(jnp.array(2.0))


def test_module_as_carry_is_updated_in_place():
  acc = Accumulator()

  @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
  def body(m, x):
    m.total.value = m.total.value + m.scale.value * x
    return m, m.total.value

  xs = jnp.arange(1.0, 5.0)
  out, running = body(acc, xs)
  assert out is acc
  ref_total, ref_running = jax.lax.scan(lambda c, x: (c + 2.0 * x, c + 2.0 * x), 0.0, xs)
  np.testing.assert_allclose(acc.total.value, ref_total)
  np.testing.assert_allclose(running, ref_running)


def test_state_axes_carry_counter_while_scanning_params():
  stack = create_stack(nnx.Rngs(0))
  stack.steps = nnx.BatchStat(jnp.array(0))
  axes = nnx.StateAxes({nnx.BatchStat: nnx.Carry, nnx.Param: 0})

  @nnx.scan(in_axes=(nnx.Carry, axes), out_axes=nnx.Carry)
  def body(x, layer):
    layer.steps.value = layer.steps.value + 1
    return layer(x)

  y = body(X, stack)
  assert int(stack.steps.value) == 5
  np.testing.assert_allclose(
    y, _loop_linear(stack.kernel.value, stack.bias.value, X), rtol=1e-5)


def _loop_linear(kernels, biases, x):
  for k, b in zip(kernels, biases, strict=True):
    x = x @ k + b
  return x


def test_scanned_state_updates_are_stacked_back():
  w = nnx.BatchStat(jnp.zeros((4, 2)))

  @nnx.scan(in_axes=(nnx.Carry, 1), out_axes=nnx.Carry)
  def body(c, w):  # w is a (4,) slice of axis 1
    w.value = w.value + c
    return c + 1.0

  c = body(jnp.ones(4), w)
  np.testing.assert_allclose(c, jnp.full(4, 3.0))
  np.testing.assert_allclose(w.value, jnp.stack([jnp.ones(4), jnp.full(4, 2.0)], axis=1))


def test_reverse_and_length_without_scanned_inputs():
  counter = nnx.Variable(jnp.array(0.0))

  @nnx.scan(in_axes=(nnx.Carry,), out_axes=(nnx.Carry, 0), length=3, reverse=True)
  def body(c):
    c.value = c.value + 1.0
    return c, c.value

  _, values = body(counter)
  np.testing.assert_allclose(values, [3.0, 2.0, 1.0])  # reverse stacks from the end
  assert float(counter.value) == 3.0


def test_split_rngs_gives_each_step_its_key_and_is_restored():
  rngs = nnx.Rngs(dropout=0)

  @nnx.split_rngs(splits=4, only="dropout")
  @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
  def body(c, rngs):
    u = jax.random.uniform(rngs.dropout())
    return c + u, u

  total, draws = body(jnp.array(0.0), rngs)
  keys = jax.random.split(jax.random.fold_in(jax.random.key(0), 0), 4)
  ref = jnp.stack([jax.random.uniform(jax.random.fold_in(k, 0)) for k in keys])
  np.testing.assert_allclose(draws, ref)
  np.testing.assert_allclose(total, ref.sum(), rtol=1e-6)
  assert rngs.dropout.key.value.shape == () and int(rngs.dropout.count.value) == 1


def test_broadcast_state_update_is_dropped_with_graph_updates():
  # Flax's graph-update scan: every iteration sees the broadcast input, writes are dropped.
  m = Accumulator()

  @nnx.scan(in_axes=(nnx.Carry, None, 0), out_axes=nnx.Carry, graph=True, graph_updates=True)
  def body(c, m, x):
    m.total.value = m.total.value + x
    return c + m.total.value

  np.testing.assert_allclose(body(jnp.array(0.0), m, jnp.arange(3.0)), 0.0 + 1.0 + 2.0)
  np.testing.assert_allclose(m.total.value, 0.0)


@pytest.mark.parametrize("graph", [True, False])
def test_broadcast_state_update_is_carried_without_graph_updates(graph):
  # Without graph updates a written broadcast Variable is carried: 0, 0+1, 0+1+2.
  m = Accumulator()

  @nnx.scan(in_axes=(nnx.Carry, None, 0), out_axes=nnx.Carry, graph=graph,
            graph_updates=False)
  def body(c, m, x):
    m.total.value = m.total.value + x
    return c + m.total.value

  np.testing.assert_allclose(body(jnp.array(0.0), m, jnp.arange(3.0)), 0.0 + 1.0 + 3.0)
  np.testing.assert_allclose(m.total.value, 3.0)


def test_broadcast_read_only_module():
  m = Accumulator()

  @nnx.scan(in_axes=(nnx.Carry, None, 0), out_axes=nnx.Carry)
  def body(c, m, x):
    return c + m.scale.value * x

  np.testing.assert_allclose(body(jnp.array(0.0), m, jnp.arange(4.0)), 12.0)


def test_structure_change_in_body_is_an_error():
  m = Accumulator()

  @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
  def body(m, x):
    m.extra = nnx.Param(x)
    return m

  with pytest.raises(errors.LoopStructureError, match="structure"):
    body(m, jnp.arange(3.0))


def test_ensemble_of_stacks_vmap_over_remat_scan_matches_loops():
  @nnx.split_rngs(splits=2)
  @nnx.vmap(in_axes=0, out_axes=0)
  def make_ensemble(rngs):
    return create_stack(rngs)

  ens = make_ensemble(nnx.Rngs(0))
  assert ens.kernel.value.shape == (2, 5, 4, 4)

  @nnx.vmap(in_axes=(0, None))
  def apply(stack, x):
    return nnx.remat(forward)(x, stack)

  y = nnx.jit(apply)(ens, X)
  ref = jnp.stack([_loop(ens.kernel.value[e], ens.bias.value[e], X) for e in range(2)])
  np.testing.assert_allclose(y, ref, rtol=1e-5)


def test_transform_metadata_removes_scanned_axis_inside():
  w = nnx.Param(jnp.zeros((3, 2)), sharding_names=("layers", "x"))
  seen = []

  @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry,
            transform_metadata={nnx.PARTITION_NAME: "layers"})
  def body(c, w):
    seen.append(w.sharding_names)
    return c + w.value.sum()

  body(jnp.array(0.0), w)
  assert seen == [("x",)] and w.sharding_names == ("layers", "x")


class Block(nnx.Module):
  def __init__(self, rngs):
    self.linear = nnx.Linear(4, 4, rngs=rngs)
    self.bn = nnx.BatchNorm(4, rngs=rngs)
    self.dropout = nnx.Dropout(0.1, rngs=rngs)

  def __call__(self, x):
    return nnx.gelu(self.dropout(self.bn(self.linear(x))))


class MLP(nnx.Module):
  def __init__(self, rngs):
    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create_block(rngs):
      return Block(rngs)

    self.blocks = create_block(rngs)

  def __call__(self, x):
    # each block's Dropout forked its own stream under the vmap: already one key per layer
    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def forward(x, block):
      return block(x)

    return forward(x, self.blocks)


def test_mlp_of_scanned_blocks_matches_loop_over_merged_slices():
  model = MLP(nnx.Rngs(0))
  assert model.blocks.linear.kernel.value.shape == (3, 4, 4)
  assert model.blocks.dropout.rngs.key.value.shape == (3,)  # one stream per layer
  graphdef, stacked, rest = nnx.split(model.blocks, (nnx.Param, nnx.BatchStat), ...)
  model.eval()  # no dropout, running statistics: a deterministic reference exists
  ref = X
  for i in range(3):
    layer = nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], stacked), rest)
    layer.eval()
    ref = layer(ref)
  np.testing.assert_allclose(model(X), ref, rtol=1e-5, atol=1e-6)

  model.train()
  before = model.blocks.bn.mean.value
  y = nnx.jit(lambda m, x: m(x))(model, X)
  assert y.shape == X.shape
  assert not np.allclose(model.blocks.bn.mean.value, before)  # every layer's stats moved
  assert (np.abs(np.asarray(model.blocks.bn.mean.value - before)).sum(1) > 0).all()
  assert model.blocks.dropout.rngs.count.value.tolist() == [1, 1, 1]  # every layer drew


def test_scanned_length_mismatch_is_reported():
  stack = create_stack(nnx.Rngs(0))  # 5 layers

  @nnx.scan(in_axes=(nnx.Carry, 0, 0), out_axes=nnx.Carry)
  def body(x, layer, y):
    return layer(x)

  with pytest.raises(errors.TransformAxesError, match="sizes differ"):
    body(X, stack, jnp.ones(4))


def test_jitted_sgd_through_partial_style_scan_matches_plain_jax():
  @functools.partial(nnx.scan, in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
  def apply(x, layer):
    return jnp.tanh(layer(x))

  @nnx.jit
  def step(model, x):
    grads = nnx.grad(lambda m: (apply(x, m) ** 2).mean())(model)
    nnx.update(model, jax.tree.map(lambda p, g: p - 0.1 * g, nnx.state(model, nnx.Param),
                                   grads))

  @jax.jit
  def ref_step(k, b, x):
    def loss(k, b):
      return (jax.lax.scan(lambda h, kb: (jnp.tanh(h @ kb[0] + kb[1]), None), x, (k, b))[0]
              ** 2).mean()
    gk, gb = jax.grad(loss, argnums=(0, 1))(k, b)
    return k - 0.1 * gk, b - 0.1 * gb

  stack = create_stack(nnx.Rngs(0))
  k, b = stack.kernel.value, stack.bias.value
  for _ in range(3):
    step(stack, X)
    k, b = ref_step(k, b, X)
  np.testing.assert_allclose(stack.kernel.value, k, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(stack.bias.value, b, rtol=1e-5, atol=1e-6)
