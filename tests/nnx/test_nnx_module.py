"""nnx.Module and the containers: attributes, traversal, modes, sow/perturb, pytree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx


class Dropoutish(nnx.Module):
  def __init__(self):
    self.deterministic = False


class Norm(nnx.Module):
  def __init__(self):
    self.use_running_average = False
    self.mean = nnx.BatchStat(jnp.zeros(2))


class Net(nnx.Module):
  def __init__(self, rngs):
    self.dense = nnx.Linear(2, 2, rngs=rngs)
    self.drop = Dropoutish()
    self.blocks = [Norm(), Norm()]
    self.config = {"name": "net"}
    self.scale = 2.0

  def __call__(self, x):
    return self.dense(x) * self.scale


def test_plain_containers_of_graph_data_become_tracked_containers():
  net = Net(nnx.Rngs(0))
  assert isinstance(net.blocks, nnx.List) and isinstance(net.blocks, list)
  assert isinstance(net.config, dict) and not nnx.is_graph_node(net.config)  # static
  net.extra = {"a": nnx.Param(1.0)}
  assert isinstance(net.extra, nnx.Dict) and net.extra.a.value == 1.0


def test_iter_modules_and_children():
  net = Net(nnx.Rngs(0))
  paths = [p for p, _ in net.iter_modules()]
  assert paths[-1] == ()
  assert set(paths) == {(), ("dense",), ("drop",), ("blocks", 0), ("blocks", 1)}
  assert [n for n, _ in net.iter_children()] == ["dense", "drop"]
  assert [p for p, _ in nnx.iter_modules(net)] == paths


def test_train_eval_flip_flags_everywhere():
  net = Net(nnx.Rngs(0))
  net.eval()
  assert net.drop.deterministic is True
  assert all(b.use_running_average for b in net.blocks)
  net.train()
  assert net.drop.deterministic is False and not net.blocks[1].use_running_average


def test_set_attributes_with_filter_and_missing_attribute():
  net = Net(nnx.Rngs(0))
  net.set_attributes(Norm, use_running_average=True)
  assert net.blocks[0].use_running_average and not hasattr(net.drop, "use_running_average")
  with pytest.raises(errors.AttributeNotFoundError, match="nonexistent"):
    net.set_attributes(nonexistent=1)
  net.set_attributes(nonexistent=1, raise_if_not_found=False)


def test_sow_accumulates_and_pop_collects():
  class M(nnx.Module):
    def __call__(self, x):
      self.sow(nnx.Intermediate, "h", x)
      self.sow(nnx.Intermediate, "total", x, reduce_fn=lambda a, b: a + b, init_fn=lambda: 0)
      return x

  m = M()
  m(1.0)
  m(2.0)
  assert m.h.value == (1.0, 2.0) and m.total.value == 3.0
  popped = nnx.pop(m, nnx.Intermediate)
  assert popped.h.value == (1.0, 2.0)
  assert not hasattr(m, "h")


def test_perturb_gives_gradient_of_intermediate():
  class M(nnx.Module):
    def __init__(self):
      self.w = nnx.Param(jnp.array(3.0))

    def __call__(self, x):
      h = self.perturb("h", self.w * x)
      return h ** 2

  m = M()
  m(2.0)  # creates the zero perturbation
  assert float(m.h.value) == 0.0
  grads = nnx.grad(lambda m: m(2.0), argnums=nnx.DiffState(0, nnx.Perturbation))(m)
  assert float(grads.h.value) == pytest.approx(2 * 6.0)


def test_module_is_a_jax_pytree():
  net = Net(nnx.Rngs(0))
  doubled = jax.tree.map(lambda x: x * 2, net)
  assert type(doubled) is Net and doubled is not net
  np.testing.assert_array_equal(doubled.dense.kernel.value, 2 * net.dense.kernel.value)
  assert doubled.scale == 2.0 and doubled.config == {"name": "net"}
  x = jnp.ones((1, 2))
  np.testing.assert_allclose(jax.jit(lambda m, x: m(x))(net, x), net(x))
  n_arrays = len(jax.tree.leaves(net))
  assert n_arrays == 2 + 2  # kernel, bias, two BatchStats


def test_list_and_dict_mutations_bump_structure():
  lst = nnx.List([nnx.Param(1.0)])
  v0 = lst._nnx_version
  lst.append(nnx.Param(2.0))
  lst[0] = nnx.Param(3.0)
  assert lst._nnx_version == v0 + 2 and [p.value for p in lst] == [3.0, 2.0]
  d = nnx.Dict()
  d["a"] = nnx.Param(1.0)
  v1 = d._nnx_version
  del d["a"]
  assert d._nnx_version == v1 + 1 and len(d) == 0


def test_setting_a_new_array_value_is_not_structural():
  net = Net(nnx.Rngs(0))
  version = net._nnx_version
  net.raw = jnp.ones(2)
  assert net._nnx_version == version + 1
  net.raw = jnp.zeros(2)
  net.scale = 2.0  # same static value
  assert net._nnx_version == version + 1
  net.scale = 3.0
  assert net._nnx_version == version + 2


def test_repr_names_attributes():
  text = repr(Net(nnx.Rngs(0)))
  assert text.startswith("Net(") and "dense=Linear(" in text and "scale=2.0" in text
