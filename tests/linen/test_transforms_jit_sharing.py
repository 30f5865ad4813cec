"""nn.jit shares one trace among sibling modules of the same class and fields.

Each test counts Python executions of the jitted method (one per trace) and checks the
outputs against hand-written JAX on the returned variables, so a shared trace that read or
wrote another instance's variables, or baked in another instance's path, would show.
"""

import jax
import jax.numpy as jnp
import numpy as np

import flaxen.linen as nn

TRACES: list[str] = []


class Block(nn.Module):
  features: int = 3

  @nn.compact
  def __call__(self, x):
    TRACES.append(self.name)
    calls = self.variable("counts", "calls", lambda: jnp.zeros((), jnp.int32))
    if not self.is_initializing():
      calls.value += 1
    noise = jax.random.normal(self.make_rng("noise"), (self.features,))
    return jnp.tanh(nn.Dense(self.features)(x)) + 0.1 * noise, noise


JitBlock = nn.jit(Block)
EagerBlock = nn.fold_rngs(Block)  # lifted like nn.jit (same keys), run without tracing


class Stack(nn.Module):
  widths: tuple = (3, 3, 3)
  eager: bool = False

  @nn.compact
  def __call__(self, x):
    noises = []
    for i, w in enumerate(self.widths):
      x, noise = (EagerBlock if self.eager else JitBlock)(w, name=f"block_{i}")(x)
      noises.append(noise)
    return x, noises


def stack_ref(params, noises, x):
  for i, noise in enumerate(noises):
    p = params[f"block_{i}"]["Dense_0"]
    x = jnp.tanh(x @ p["kernel"] + p["bias"]) + 0.1 * noise
  return x


def rngs(seed):
  return {"params": jax.random.key(seed), "noise": jax.random.key(seed + 100)}


def test_siblings_share_one_trace_and_keep_their_own_variables():
  x = jax.random.normal(jax.random.key(0), (2, 3))
  TRACES.clear()
  variables = Stack().init(rngs(0), x)
  assert len(TRACES) == 1  # the later siblings reuse the first one's trace
  kernels = [variables["params"][f"block_{i}"]["Dense_0"]["kernel"] for i in range(3)]
  assert not np.allclose(kernels[0], kernels[1])  # each drew its own init key
  TRACES.clear()
  for step in range(1, 3):
    (y, noises), updates = Stack().apply(variables, x, rngs=rngs(step), mutable=["counts"])
    variables = {**variables, **updates}
    assert [int(variables["counts"][f"block_{i}"]["calls"]) for i in range(3)] == [step] * 3
    # exact but for float32 rounding of the same ops in another order
    np.testing.assert_allclose(y, stack_ref(variables["params"], noises, x), rtol=1e-6,
                               atol=1e-6)
    assert not np.allclose(noises[0], noises[1])  # each instance's rng key is its own
  assert len(TRACES) == 1  # one apply trace, shared by the three and by both steps


def test_rngs_inside_a_shared_trace_do_not_depend_on_which_sibling_traced():
  # nn.fold_rngs runs each sibling's method eagerly, drawing the keys nn.jit draws: every
  # sibling's noise must match it, not only the one whose call was traced.
  x = jnp.ones((1, 3))
  variables = Stack().init(rngs(0), x)
  (y, jit_noises), _ = Stack().apply(variables, x, rngs=rngs(7), mutable=["counts"])
  (y_eager, eager_noises), _ = Stack(eager=True).apply(variables, x, rngs=rngs(7),
                                                       mutable=["counts"])
  for a, b in zip(jit_noises, eager_noises, strict=True):
    np.testing.assert_array_equal(a, b)  # same keys, same sampler: bit-identical
  np.testing.assert_allclose(y, y_eager, rtol=1e-6, atol=1e-6)  # compiled vs eager rounding


def test_different_fields_do_not_share_a_trace():
  x = jnp.ones((1, 3))
  TRACES.clear()
  variables = Stack(widths=(3, 4, 3)).init(rngs(0), x)
  assert len(TRACES) == 2  # features=3 (twice) and features=4
  assert variables["params"]["block_1"]["Dense_0"]["kernel"].shape == (3, 4)
  (y, noises), _ = Stack(widths=(3, 4, 3)).apply(variables, x, rngs=rngs(1), mutable=["counts"])
  np.testing.assert_allclose(y, stack_ref(variables["params"], noises, x), rtol=1e-6, atol=1e-6)


def test_interceptors_see_every_sibling():
  # an interceptor may look at each module's path, so under one the siblings trace apart
  x = jnp.ones((1, 3))
  variables = Stack().init(rngs(0), x)
  seen = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Dense):
      seen.append(context.module.path)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    Stack().apply(variables, x, rngs=rngs(1), mutable=["counts"])
  assert seen == [(f"block_{i}", "Dense_0") for i in range(3)]


def test_jitted_method_in_setup_defined_siblings():
  traces = []

  class Layer(nn.Module):
    def setup(self):
      self.dense = nn.Dense(2, use_bias=False)

    @nn.jit
    def __call__(self, x):
      traces.append(1)
      return self.dense(x)

  class Model(nn.Module):
    def setup(self):
      self.layers = [Layer() for _ in range(4)]

    def __call__(self, x):
      for layer in self.layers:
        x = layer(x)
      return x

  x = jnp.ones((1, 2))
  variables = Model().init(jax.random.key(0), x)
  assert len(traces) == 1
  y = Model().apply(variables, x)
  ref = x
  for i in range(4):
    ref = ref @ variables["params"][f"layers_{i}"]["dense"]["kernel"]
  np.testing.assert_allclose(y, ref, rtol=1e-6)
  assert len(traces) == 2
