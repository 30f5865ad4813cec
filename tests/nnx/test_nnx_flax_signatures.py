"""Parameters Flax 0.12 names explicitly: with_metadata's hooks, Variable.__call__'s
keywords, List.append / insert, Sequential's rngs."""

import jax
import jax.numpy as jnp
import numpy as np

from flaxen import nnx


def test_with_metadata_hooks_are_explicit_parameters():
  init = nnx.with_metadata(lambda: jnp.ones(2), on_get_value=lambda v, x: x * 2,
                           sharding_names=("a",))
  var = nnx.Param(init())
  np.testing.assert_array_equal(var.value, jnp.full(2, 2.0))  # the hook ran on read
  np.testing.assert_array_equal(var.get_raw_value(), jnp.ones(2))
  assert var.get_metadata("sharding_names") == ("a",)
  plain = nnx.Param(nnx.with_metadata(lambda: 1.0)())  # () hooks add no metadata
  assert "on_get_value" not in plain.get_metadata()


def test_variable_call_passes_keywords():
  v = nnx.Param(jnp.arange(3.0))
  assert v(index=1) == 1.0
  v(jnp.array(7.0), index=2)
  np.testing.assert_array_equal(v.value, jnp.array([0.0, 1.0, 7.0]))


def test_list_append_and_insert():
  layers = nnx.List([nnx.Param(1.0)])
  layers.append(nnx.Param(3.0))
  layers.insert(1, nnx.Param(2.0))
  assert [p.value for p in layers] == [1.0, 2.0, 3.0]
  assert nnx.state(layers)[1].value == 2.0


class _Noisy(nnx.Module):
  def __call__(self, x, *, rngs=None):
    return x + (0.0 if rngs is None else jax.random.normal(rngs.noise(), x.shape))


def test_sequential_passes_rngs_to_layers_that_take_them():
  model = nnx.Sequential(_Noisy(), lambda x: 2 * x, _Noisy())
  x = jnp.zeros(3)
  np.testing.assert_array_equal(model(x), x)  # no rngs: no noise
  out = model(x, rngs=nnx.Rngs(noise=0))
  keys = nnx.Rngs(noise=0)  # the same stream, drawn in the same order
  expected = 2 * jax.random.normal(keys.noise(), (3,)) + jax.random.normal(keys.noise(), (3,))
  np.testing.assert_allclose(out, expected, rtol=1e-6)  # float32 rounding only


class _Holder(nnx.Module):
  def __init__(self, explicit):
    drop = nnx.Dropout(0.5)
    self.layers = nnx.List([drop]) if explicit else [drop]


def test_list_and_dict_are_modules_listed_only_when_made_explicitly():
  assert issubclass(nnx.List, nnx.Module) and issubclass(nnx.Dict, nnx.Module)
  assert isinstance(nnx.List([]), list) and isinstance(nnx.Dict(), dict)
  # An nnx.List is a Module (as in Flax); a plain list flaxen tracks is not listed, since
  # in Flax it stays a plain list.
  assert [p for p, _ in _Holder(True).iter_modules()] == [("layers", 0), ("layers",), ()]
  assert [p for p, _ in _Holder(False).iter_modules()] == [("layers", 0), ()]
  assert [n for n, _ in nnx.iter_children(_Holder(True))] == ["layers"]
  assert list(nnx.iter_children(_Holder(False))) == []
  for explicit in (True, False):
    m = _Holder(explicit).eval()  # reaches the Dropout through the container
    assert m.layers[0].deterministic is True
    assert type(m.layers).__name__ == "List"


def test_module_containers_stay_pytrees_and_graph_nodes():
  d = nnx.Dict(a=nnx.Param(jnp.ones(2)), b=nnx.List([nnx.Param(jnp.zeros(1))]))
  leaves = jax.tree.leaves(d)
  assert len(leaves) == 2
  doubled = jax.tree.map(lambda x: 2 * x, d)
  assert type(doubled) is nnx.Dict and type(doubled["b"]) is nnx.List
  np.testing.assert_array_equal(doubled["a"].value, 2 * jnp.ones(2))
  gd, st = nnx.split(d)
  clone = nnx.merge(gd, st)
  assert type(clone["b"]) is nnx.List and clone["b"][0].value.shape == (1,)


def test_node_states_and_nnx_meta_are_pytree_nodes():
  from flaxen import struct
  from flaxen.nnx import bridge
  assert issubclass(nnx.NodeStates, struct.PyTreeNode)
  assert issubclass(bridge.NNXMeta, struct.PyTreeNode)
  ns = nnx.NodeStates.from_split(*nnx.split(nnx.Linear(1, 2, rngs=nnx.Rngs(0))), metadata=3)
  back = jax.tree.map(lambda x: x + 1, ns)
  assert back.metadata == 3 and back.graphdef == ns.graphdef
  np.testing.assert_array_equal(back.state["bias"].value, jnp.ones(2))
  box = bridge.NNXMeta(nnx.Param, jnp.zeros(2), {"out_sharding": ("x",)})
  assert jax.tree.leaves(box)[0].shape == (2,)
  assert box.replace(value=1).value == 1


def test_dict_keys_win_over_module_method_names():
  d = nnx.Dict(train=nnx.Dropout(0.5), other=nnx.Dropout(0.5))
  assert isinstance(d.train, nnx.Dropout)  # the key, as Flax's attribute-backed Dict gives
  plain = nnx.Dict(layer=nnx.Dropout(0.5))
  plain.eval()  # no such key: the Module method
  assert plain.layer.deterministic is True
