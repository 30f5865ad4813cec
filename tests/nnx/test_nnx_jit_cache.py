"""nnx.jit's caches: bounded, weakly keyed, and correct when ids or traces change."""

import gc
import weakref

import jax.numpy as jnp
import numpy as np
import optax

from flaxen import nnx
from flaxen.nnx.transforms import jit as jit_module


def train_step(model, optimizer, x):
  loss, grads = nnx.value_and_grad(lambda m: jnp.mean(m(x) ** 2))(model)
  optimizer.update(model, grads)
  return loss


def test_deleted_model_and_optimizer_are_collected():
  tx = optax.sgd(0.1)
  for donate in (None, (0, 1)):
    step = nnx.jit(train_step, donate_argnums=donate)
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    refs = [weakref.ref(model), weakref.ref(optimizer), weakref.ref(model.kernel)]
    for _ in range(2):
      step(model, optimizer, jnp.ones((4, 3)))
    assert len(step._entries) == 1 and int(optimizer.step.value) == 2
    del model, optimizer
    gc.collect()
    assert all(r() is None for r in refs) and not step._entries


def test_both_caches_are_bounded(monkeypatch):
  monkeypatch.setattr(jit_module, "_MAX_ENTRIES", 2)
  step = nnx.jit(lambda m, x: m(x))
  models = [nnx.Linear(3, n, rngs=nnx.Rngs(0)) for n in range(1, 5)]  # 4 structures
  for m in models:
    assert step(m, jnp.ones(3)).shape == (m.out_features,)
  assert len(step._entries) == 2 and len(step._compiled) == 2
  m = models[0]
  np.testing.assert_allclose(step(m, jnp.ones(3)), m.kernel.value.sum(0) + m.bias.value,
                             rtol=1e-6)


def test_reused_ids_never_hit_a_stale_entry():
  step = nnx.jit(lambda m, x: m(x))
  for n in range(6):  # a dead model's id is often reused by the next one
    m = nnx.Linear(2, n % 2 + 1, rngs=nnx.Rngs(n))
    expected = m.kernel.value.sum(0) + m.bias.value
    np.testing.assert_allclose(step(m, jnp.ones(2)), expected, rtol=1e-6)
    del m
  gc.collect()  # a Module may sit in a reference cycle: its entry goes when it is freed
  assert not step._entries


def test_new_trace_on_the_fast_path_writes_back_correctly():
  class Acc(nnx.Module):
    def __init__(self):
      self.total = nnx.BatchStat(jnp.zeros(()))

  @nnx.jit
  def add(acc, x):
    acc.total.value = acc.total.value + x.sum()
    return x.shape[0]

  acc = Acc()
  sizes = [2, 3, 2, 3, 4]  # shapes alternate: jax.jit retraces, the entry stays
  outs = [add(acc, jnp.ones(n)) for n in sizes]
  assert outs == sizes and float(acc.total.value) == sum(sizes)
  assert len(add._entries) == 1
  add(acc, np.ones(2))  # a NumPy argument takes the general path; same result
  add(acc, x=jnp.ones(1))
  assert float(acc.total.value) == sum(sizes) + 3


def test_flat_dict_batches_and_no_arguments():
  class Acc(nnx.Module):
    def __init__(self):
      self.total = nnx.BatchStat(jnp.zeros(()))

  @nnx.jit
  def add(batch, acc):  # the dict comes first: argument and leaf positions differ
    acc.total.value = acc.total.value + batch["x"].sum() * batch.get("w", 1.0)
    return batch["x"]

  acc = Acc()
  add({"x": jnp.ones(2)}, acc)
  add({"x": jnp.ones(3)}, acc)
  add({"x": jnp.ones(2), "w": jnp.array(2.0)}, acc)  # other keys: another entry
  np.testing.assert_array_equal(add({"x": jnp.ones(1)}, acc), jnp.ones(1))
  assert float(acc.total.value) == 2 + 3 + 4 + 1 and len(add._entries) == 2
  assert float(nnx.jit(lambda: jnp.ones(()))()) == 1.0
