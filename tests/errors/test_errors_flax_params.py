"""Error classes take Flax's constructor parameters and are raised where Flax raises them."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import pytest

import flaxen.linen as nn
from flaxen import checkpoint, errors, serialization
from flaxen.training import checkpoints


@pytest.mark.parametrize("make", [
  lambda: errors.FlaxError(message="boom"),
  lambda: errors.ApplyScopeInvalidVariablesStructureError(variables={"params": {"params": 1}}),
  lambda: errors.InvalidFilterError(filter_like=3),
  lambda: errors.InvalidScopeError(scope_name="/encoder"),
  lambda: errors.ReservedModuleAttributeError(annotations={"name": str, "x": int}),
  lambda: errors.TraceContextError(message="Cannot mutate Param from a different trace"),
  lambda: errors.TransformTargetError(target=nn.Dense(2)),
  lambda: errors.ImmutableVariableError(message="Cannot mutate Param"),
  lambda: errors.PartitioningUnspecifiedError(target=None),
  lambda: errors.AlreadyExistsError(path="/tmp/x"),
  lambda: errors.DescriptorAttributeError(),
  lambda: errors.MPARestoreTargetRequiredError(path="/tmp/c", step=3, key="w"),
  lambda: errors.MPARestoreDataCorruptedError(step=3, path="/tmp/c"),
])
def test_flax_constructor_parameters(make):
  e = make()
  assert isinstance(e, errors.FlaxError)
  assert str(e)


def test_messages_name_what_the_flax_parameters_hold():
  assert str(errors.FlaxError("boom")) == "boom"
  assert "'name'" in str(errors.ReservedModuleAttributeError({"name": str, "x": int}, "Block"))
  assert "/encoder" in str(errors.InvalidScopeError("/encoder"))
  assert "Dense" in str(errors.TransformTargetError(nn.Dense(2), "vmap"))
  assert "nn.vmap" in str(errors.TransformTargetError(nn.Dense(2), "vmap"))
  assert "'params'" in str(errors.ApplyScopeInvalidVariablesStructureError({"params": {}}))
  assert str(errors.TraceContextError("from a different trace")) == "from a different trace"
  assert "at w" in str(errors.MPARestoreTargetRequiredError("/c", 3, "w"))


def test_property_reading_a_missing_attribute_names_the_property():
  class Foo(nn.Module):
    @property
    def scale(self):
      return self.missing_field

    def __call__(self, x):
      return x * self.scale

  with pytest.raises(errors.DescriptorAttributeError, match="Foo.scale") as info:
    Foo().init(jax.random.key(0), jnp.ones(2))
  assert "missing_field" in str(info.value.__cause__)
  assert isinstance(info.value, AttributeError)  # hasattr() stays False, as before


def test_property_reading_a_setup_attribute_still_works():
  class Foo(nn.Module):
    def setup(self):
      self.dense = nn.Dense(2)

    @property
    def layer(self):
      return self.dense

    def __call__(self, x):
      return self.layer(x)

  variables = Foo().init(jax.random.key(0), jnp.ones((1, 3)))
  assert variables["params"]["dense"]["kernel"].shape == (3, 2)


class _Layer(nn.Module):
  @nn.compact
  def __call__(self, x):
    return x * self.param("w", nn.with_partitioning(nn.initializers.ones, ("embed",)), (2,))


def test_mapping_a_partitioned_axis_needs_its_name():
  stack = nn.vmap(_Layer, variable_axes={"params": 0}, split_rngs={"params": True})
  with pytest.raises(errors.PartitioningUnspecifiedError, match="metadata_params"):
    stack().init(jax.random.key(0), jnp.ones((3, 2)))
  named = nn.vmap(_Layer, variable_axes={"params": 0}, split_rngs={"params": True},
                  metadata_params={nn.PARTITION_NAME: "layers"})
  w = named().init(jax.random.key(0), jnp.ones((3, 2)))["params"]["w"]
  assert w.names == ("layers", "embed") and w.value.shape == (3, 2)


def test_overwriting_a_checkpoint_raises_already_exists(tmp_path):
  path = tmp_path / "ckpt"
  checkpoint.save(path, {"w": jnp.ones(2)})
  with pytest.raises(errors.AlreadyExistsError) as info:
    checkpoint.save(path, {"w": jnp.zeros(2)})
  assert isinstance(info.value, errors.CheckpointExistsError | FileExistsError)


def _flax_mpa_checkpoint(ckpt_dir) -> str:
  """A msgpack checkpoint as Flax writes it for a multi-process array ``w``."""
  path = os.path.join(ckpt_dir, "checkpoint_0")
  with open(path, "wb") as f:
    f.write(serialization.msgpack_serialize({"w": checkpoints.MP_ARRAY_PH + "w", "b": 1}))
  return path


def test_restoring_multiprocess_arrays(tmp_path):
  path = _flax_mpa_checkpoint(tmp_path)
  with pytest.raises(errors.MPARestoreTargetRequiredError, match="at w"):
    checkpoints.restore_checkpoint(tmp_path, target=None)
  with pytest.raises(errors.MPACheckpointingRequiredError):  # no way to rebuild them here
    checkpoints.restore_checkpoint(tmp_path, target={"w": 0, "b": 0})
  partial = checkpoints.restore_checkpoint(tmp_path, target=None,
                                           allow_partial_mpa_restoration=True)
  assert partial["b"] == 1
  os.mkdir(path + "_gda")  # arrays' directory without its commit marker: an unfinished save
  with pytest.raises(errors.MPARestoreDataCorruptedError) as info:
    checkpoints.restore_checkpoint(tmp_path, target=None)
  assert isinstance(info.value, errors.CheckpointCorruptedError)
