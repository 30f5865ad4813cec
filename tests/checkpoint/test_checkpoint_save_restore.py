"""flaxen.checkpoint.save / restore: round trips of common pytrees, targets, errors."""

from collections import OrderedDict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaxen import checkpoint, errors, struct


@struct.dataclass
class TrainState:
  step: int
  params: dict
  opt_state: optax.OptState
  apply_fn: object = struct.field(pytree_node=False, default=None)


def _params():
  k1, k2 = jax.random.split(jax.random.key(0))
  return {
    "Dense_0": {"kernel": jax.random.normal(k1, (3, 4)), "bias": jnp.zeros((4,))},
    "Dense_1": {"kernel": jax.random.normal(k2, (4, 2)), "bias": jnp.ones((2,))},
  }


def _state(step=5):
  params = _params()
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  _, opt_state = tx.update(grads, opt_state, params)
  return TrainState(step=step, params=params, opt_state=opt_state)


def _assert_same(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    assert type(x) is type(y) or (isinstance(x, jax.Array) and isinstance(y, jax.Array))
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert np.asarray(x).dtype == np.asarray(y).dtype


def test_linen_style_variables_round_trip(tmp_path):
  variables = {"params": _params(), "batch_stats": {"mean": jnp.arange(4.0)}}
  checkpoint.save(tmp_path / "ckpt", variables)
  _assert_same(checkpoint.restore(tmp_path / "ckpt", variables), variables)


def test_train_state_with_optax_state_round_trips_into_concrete_and_abstract_target(tmp_path):
  state = _state()
  checkpoint.save(tmp_path / "ckpt", state)
  fresh = _state(step=0)
  restored = checkpoint.restore(tmp_path / "ckpt", fresh)
  _assert_same(restored, state)
  assert isinstance(restored.opt_state[0], optax.ScaleByAdamState)
  abstract = jax.eval_shape(lambda: _state(step=0))
  restored = checkpoint.restore(str(tmp_path / "ckpt"), abstract)
  assert isinstance(restored.params["Dense_0"]["kernel"], jax.Array)
  np.testing.assert_array_equal(restored.opt_state[0].mu["Dense_1"]["bias"],
                                state.opt_state[0].mu["Dense_1"]["bias"])


def test_restore_without_target_gives_nested_dicts_by_name(tmp_path):
  checkpoint.save(tmp_path / "ckpt", _state())
  raw = checkpoint.restore(tmp_path / "ckpt")
  assert set(raw) == {"step", "params", "opt_state"}
  assert set(raw["opt_state"][0]) == {"count", "mu", "nu"}  # a tuple is stored as a list
  assert raw["step"] == 5
  np.testing.assert_array_equal(raw["params"]["Dense_1"]["bias"], np.ones(2))
  assert isinstance(raw["params"]["Dense_1"]["bias"], jax.Array)
  assert raw["params"]["Dense_1"]["bias"].sharding.device_set == {jax.devices()[0]}


def test_lists_tuples_and_none_leaves(tmp_path):
  tree = {"layers": [jnp.ones(2), (np.int32(3), None)], "flag": True, "lr": 0.5}
  checkpoint.save(tmp_path / "ckpt", tree)
  restored = checkpoint.restore(tmp_path / "ckpt", tree)
  _assert_same(restored, tree)
  assert isinstance(restored["layers"][1][0], np.int32)
  assert restored["flag"] is True and restored["lr"] == 0.5


def test_relative_path_is_made_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  checkpoint.save("rel/ckpt", {"w": jnp.ones(2)})
  assert (tmp_path / "rel" / "ckpt").is_dir()
  np.testing.assert_array_equal(checkpoint.restore(Path("rel/ckpt"))["w"], np.ones(2))


def test_restore_uses_target_sharding_and_dtype(tmp_path):
  checkpoint.save(tmp_path / "ckpt", {"w": jnp.arange(6.0).reshape(2, 3)})
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = {"w": jax.ShapeDtypeStruct((2, 3), jnp.float32, sharding=sharding)}
  w = checkpoint.restore(tmp_path / "ckpt", target)["w"]
  assert w.sharding == sharding and w.dtype == jnp.float32
  np.testing.assert_array_equal(w, np.arange(6.0).reshape(2, 3))


def test_python_int_step_restores_into_int32_array_and_back(tmp_path):
  checkpoint.save(tmp_path / "a", {"step": 3})
  step = checkpoint.restore(tmp_path / "a", {"step": jnp.int32(0)})["step"]
  assert isinstance(step, jax.Array) and step.dtype == jnp.int32 and int(step) == 3
  checkpoint.save(tmp_path / "b", {"step": jnp.int32(4)})
  step = checkpoint.restore(tmp_path / "b", {"step": 0})["step"]
  assert type(step) is int and step == 4


def test_python_scalars_still_need_the_same_kind_of_dtype(tmp_path):
  checkpoint.save(tmp_path / "ckpt", {"lr": 0.5, "flag": True})
  with pytest.raises(errors.CheckpointMismatchError, match="int32") as info:
    checkpoint.restore(tmp_path / "ckpt", {"lr": jnp.int32(0), "flag": False})
  assert info.value.path == "lr"
  restored = checkpoint.restore(tmp_path / "ckpt", {"lr": jnp.bfloat16(0), "flag": np.bool_(0)})
  assert restored["lr"].dtype == jnp.bfloat16 and float(restored["lr"]) == 0.5
  assert restored["flag"] is np.True_


def test_existing_path_needs_force(tmp_path):
  checkpoint.save(tmp_path / "ckpt", {"w": jnp.zeros(2)})
  with pytest.raises(errors.CheckpointExistsError, match="force=True") as info:
    checkpoint.save(tmp_path / "ckpt", {"w": jnp.ones(2)})
  assert isinstance(info.value, FileExistsError)
  np.testing.assert_array_equal(checkpoint.restore(tmp_path / "ckpt")["w"], np.zeros(2))
  checkpoint.save(tmp_path / "ckpt", {"w": jnp.ones(2)}, force=True)
  np.testing.assert_array_equal(checkpoint.restore(tmp_path / "ckpt")["w"], np.ones(2))


def test_missing_checkpoint(tmp_path):
  with pytest.raises(errors.CheckpointNotFoundError, match="nope") as info:
    checkpoint.restore(tmp_path / "nope")
  assert isinstance(info.value, FileNotFoundError)


def _saved(tmp_path):
  variables = {"params": _params()}
  checkpoint.save(tmp_path / "ckpt", variables)
  return tmp_path / "ckpt", variables


def test_missing_entry_names_path_and_what_the_checkpoint_holds(tmp_path):
  path, variables = _saved(tmp_path)
  variables["params"]["Dense_2"] = {"kernel": jnp.zeros((2, 2))}
  with pytest.raises(errors.CheckpointMismatchError) as info:
    checkpoint.restore(path, variables)
  assert info.value.path == "params/Dense_2/kernel"
  assert "float32[2, 2]" in str(info.value)
  assert "'Dense_0', 'Dense_1'" in str(info.value)


def test_extra_entry_in_checkpoint_is_a_mismatch(tmp_path):
  path, variables = _saved(tmp_path)
  del variables["params"]["Dense_1"]["bias"]
  with pytest.raises(errors.CheckpointMismatchError) as info:
    checkpoint.restore(path, variables)
  assert info.value.path == "params/Dense_1/bias"
  assert "float32[2]" in info.value.found


def test_shape_mismatch_names_first_path_with_expected_and_found(tmp_path):
  path, variables = _saved(tmp_path)
  variables["params"]["Dense_0"]["kernel"] = jnp.zeros((3, 5))
  variables["params"]["Dense_1"]["kernel"] = jnp.zeros((5, 2))
  with pytest.raises(errors.CheckpointMismatchError) as info:
    checkpoint.restore(path, variables)
  message = str(info.value)
  assert "'params/Dense_0/kernel'" in message
  assert "float32[3, 5]" in message and "float32[3, 4]" in message
  assert isinstance(info.value, ValueError)


def test_dtype_mismatch_is_an_error_for_arrays(tmp_path):
  path, _ = _saved(tmp_path)
  abstract = jax.eval_shape(lambda: {"params": _params()})
  abstract["params"]["Dense_1"]["bias"] = jax.ShapeDtypeStruct((2,), jnp.bfloat16)
  with pytest.raises(errors.CheckpointMismatchError, match="bfloat16") as info:
    checkpoint.restore(path, abstract)
  assert info.value.path == "params/Dense_1/bias"


def test_unsupported_leaves_and_empty_trees(tmp_path):
  with pytest.raises(errors.UnsupportedCheckpointLeafError, match="'meta/name'"):
    checkpoint.save(tmp_path / "a", {"w": jnp.ones(1), "meta": {"name": "x"}})
  with pytest.raises(errors.EmptyCheckpointError):
    checkpoint.save(tmp_path / "b", {"a": {}, "b": None})
  with pytest.raises(errors.CheckpointKeyCollisionError, match="'1'"):
    checkpoint.save(tmp_path / "c", OrderedDict([(1, jnp.ones(1)), ("1", jnp.zeros(1))]))
  with pytest.raises(errors.CheckpointKeyCollisionError, match="'1'"):
    checkpoint.save(tmp_path / "e", OrderedDict([(1, jnp.ones(1)), ("1", {"b": jnp.ones(1)})]))
  with pytest.raises(errors.CheckpointKeyCollisionError, match="'a/b' and 'a.b'"):
    checkpoint.save(tmp_path / "d", {"a.b": jnp.zeros(1), "a": {"b": jnp.ones(1)}})
  assert not any((tmp_path / name).exists() for name in "acde")


def test_unsupported_target_leaf(tmp_path):
  path, _ = _saved(tmp_path)
  target = {"params": jax.tree.map(lambda x: "?", _params())}
  with pytest.raises(errors.UnsupportedCheckpointLeafError, match="'params/Dense_0/bias'"):
    checkpoint.restore(path, target)


_names = st.text("abcxyz_", min_size=1, max_size=4)
_leaves = st.builds(
  lambda shape, dtype: np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape),
  st.lists(st.integers(1, 3), max_size=2).map(tuple),
  st.sampled_from([np.float32, np.int32, np.uint8, np.float16]),
)
_trees = st.recursive(
  _leaves, lambda sub: st.dictionaries(_names, sub, min_size=1, max_size=3), max_leaves=6
).filter(lambda t: isinstance(t, dict))


@settings(
  max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=_trees)
def test_random_nested_dicts_round_trip(tmp_path, tree):
  path = tmp_path / f"ckpt{len(list(tmp_path.iterdir()))}"
  checkpoint.save(path, tree)
  _assert_same(checkpoint.restore(path, tree), tree)
  _assert_same(checkpoint.restore(path), tree)


@settings(
  max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=_trees, data=st.data())
def test_changing_any_one_leaf_is_reported_at_its_path(tmp_path, tree, data):
  path = tmp_path / f"ckpt{len(list(tmp_path.iterdir()))}"
  checkpoint.save(path, tree)
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  i = data.draw(st.integers(0, len(leaves) - 1))
  keys, leaf = leaves[i]
  change = data.draw(st.sampled_from(["shape", "dtype"]))
  new = np.zeros((*leaf.shape, 2), leaf.dtype) if change == "shape" else leaf.astype(np.int8)
  target = jax.tree_util.tree_unflatten(
    jax.tree.structure(tree), [new if j == i else x for j, (_, x) in enumerate(leaves)]
  )
  with pytest.raises(errors.CheckpointMismatchError) as info:
    checkpoint.restore(path, target)
  assert info.value.path == "/".join(k.key for k in keys)
