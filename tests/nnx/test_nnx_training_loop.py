"""End to end: a stateful model (params, batch stats, dropout Rngs) trained with nnx.jit +
nnx.value_and_grad + nnx.Optimizer, against the same loop written in plain JAX."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flaxen import nnx

X = jax.random.normal(jax.random.key(10), (8, 3))
Y = jax.random.normal(jax.random.key(11), (8, 2))
RATE = 0.5


class Net(nnx.Module):
  def __init__(self, rngs):
    self.l1 = nnx.Linear(3, 4, rngs=rngs)
    self.l2 = nnx.Linear(4, 2, rngs=rngs)
    self.mean = nnx.BatchStat(jnp.zeros(4))
    self.rngs = rngs
    self.deterministic = False

  def __call__(self, x):
    h = jax.nn.relu(self.l1(x))
    if not self.deterministic:
      self.mean.value = 0.9 * self.mean.value + 0.1 * h.mean(0)
      keep = jax.random.bernoulli(self.rngs.dropout(), 1 - RATE, h.shape)
      h = jnp.where(keep, h / (1 - RATE), 0.0)
    return self.l2(h - self.mean.value)


def _reference(params, mean, steps, tx):
  """The same computation with explicit state: params, running mean, dropout counter."""
  def forward(p, mean, count):
    h = jax.nn.relu(X @ p["l1"]["kernel"] + p["l1"]["bias"])
    new_mean = 0.9 * mean + 0.1 * h.mean(0)
    key = jax.random.fold_in(jax.random.key(1), count)
    keep = jax.random.bernoulli(key, 1 - RATE, h.shape)
    h = jnp.where(keep, h / (1 - RATE), 0.0)
    out = (h - new_mean) @ p["l2"]["kernel"] + p["l2"]["bias"]
    return jnp.mean((out - Y) ** 2), new_mean

  opt_state = tx.init(params)
  losses = []
  for count in range(steps):
    (loss, mean), grads = jax.value_and_grad(forward, has_aux=True)(params, mean, count)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    losses.append(loss)
  return params, mean, losses


def test_training_loop_matches_plain_jax():
  model = Net(nnx.Rngs(params=0, dropout=1))
  params0 = nnx.state(model, nnx.Param).to_pure_dict()
  opt = nnx.Optimizer(model, optax.adam(0.01), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, opt, x, y):
    def loss_fn(model):
      return jnp.mean((model(x) - y) ** 2)
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss

  losses = [train_step(model, opt, X, Y) for _ in range(4)]
  ref_params, ref_mean, ref_losses = _reference(params0, jnp.zeros(4), 4, optax.adam(0.01))
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
  got = nnx.state(model, nnx.Param).to_pure_dict()
  for layer in ("l1", "l2"):
    for name in ("kernel", "bias"):
      np.testing.assert_allclose(got[layer][name], ref_params[layer][name], rtol=1e-5,
                                 atol=1e-6)
  np.testing.assert_allclose(model.mean.value, ref_mean, rtol=1e-5)
  assert int(model.rngs.dropout.count.value) == 4 and int(opt.step.value) == 4

  model.eval()  # structural (static attribute) change: new trace, no state updates
  before = model.mean.value
  out = nnx.jit(lambda m, x: m(x))(model, X)
  assert out.shape == (8, 2) and np.array_equal(model.mean.value, before)
