"""orbax_utils: Orbax save/restore arguments built from a target, as Flax's guide uses them."""

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from flaxen.training import orbax_utils


def save(path, tree):
  with ocp.PyTreeCheckpointer() as ckptr:
    ckptr.save(path, tree, save_args=orbax_utils.save_args_from_target(tree))


def restore(path, target, **kw):
  with ocp.PyTreeCheckpointer() as ckptr:
    return ckptr.restore(path, item=target, **kw)


def test_jax_target_restores_jax_arrays_cast_to_its_dtype(tmp_path):
  save(tmp_path / "c", {"w": jnp.arange(4.0), "step": jnp.array(3)})
  target = {"w": jnp.zeros(4, jnp.bfloat16), "step": jnp.array(0)}
  got = restore(tmp_path / "c", target,
                restore_args=orbax_utils.restore_args_from_target(target))
  assert isinstance(got["w"], jax.Array) and got["w"].dtype == jnp.bfloat16
  np.testing.assert_array_equal(got["w"].astype(jnp.float32), [0.0, 1.0, 2.0, 3.0])
  assert int(got["step"]) == 3 and got["w"].sharding == target["w"].sharding


def test_numpy_target_restores_numpy(tmp_path):
  save(tmp_path / "c", {"w": np.arange(3.0)})
  target = {"w": np.zeros(3)}
  args = orbax_utils.restore_args_from_target(target)
  assert args["w"].restore_type is np.ndarray
  got = restore(tmp_path / "c", target, restore_args=args)
  assert isinstance(got["w"], np.ndarray)
  np.testing.assert_array_equal(got["w"], [0.0, 1.0, 2.0])


def test_mesh_argument_is_deprecated():
  with pytest.warns(DeprecationWarning, match="mesh"):
    orbax_utils.restore_args_from_target({"w": np.zeros(2)}, mesh=object())


def test_transformations_and_multi_device_check():
  given = {"a": ocp.Transform()}
  assert orbax_utils.maybe_construct_transformations({"a": 1}, given) is given
  built = orbax_utils.maybe_construct_transformations({"a": {"b": None}, "c": 1}, None)
  assert list(built) == ["a/b"] and built["a/b"].use_fallback
  assert not orbax_utils.is_multi_device_array(jnp.ones(2))  # one device: replicated
  assert not orbax_utils.is_multi_device_array(np.ones(2))
