"""flaxen.config: Flax's flag names and defaults, update, environment variables, errors."""

import os
import subprocess
import sys

import pytest

from flaxen import config, configurations, errors


def test_flax_flag_names_and_defaults():
  assert config.nnx_graph_mode is True
  assert config.nnx_graph_updates is True
  assert config.flax_return_frozendict is False
  assert config.flax_use_orbax_checkpointing is True
  assert config.flax_max_repr_depth is None
  assert configurations.flax_fix_rng.value is False  # holder name differs from the flag's


def test_update_by_name_and_by_holder_then_restore():
  config.update("nnx_graph_updates", False)
  assert configurations.nnx_graph_updates.value is False
  config.update(configurations.nnx_graph_updates, True)
  assert config.nnx_graph_updates is True


def test_temp_flip_flag_restores_on_error():
  with pytest.raises(RuntimeError), configurations.temp_flip_flag("return_frozendict", True):
    assert config.flax_return_frozendict is True
    raise RuntimeError
  assert config.flax_return_frozendict is False


def test_temp_flip_flag_is_a_config_method_as_in_flax():
  with config.temp_flip_flag("profile", False):
    assert config.flax_profile is False
  assert config.flax_profile is True
  with pytest.raises(errors.ConfigFlagError, match="no flag 'flax_no_such_flag'"):
    with config.temp_flip_flag("no_such_flag", True):
      pass


def test_int_flag_takes_int_or_none():
  config.update("flax_max_repr_depth", 3)
  assert config.flax_max_repr_depth == 3
  config.update("flax_max_repr_depth", None)
  with pytest.raises(errors.ConfigFlagError, match="expected an int"):
    config.update("flax_max_repr_depth", "deep")


def test_unknown_flag_and_bad_type_name_the_flag():
  with pytest.raises(errors.ConfigFlagError, match="'nnx_graph_mod'.*nnx_graph_mode"):
    config.update("nnx_graph_mod", False)
  with pytest.raises(errors.ConfigFlagError, match="expected a bool"):
    config.update("nnx_graph_mode", "no")
  with pytest.raises(AttributeError):
    config.not_a_flag  # noqa: B018


def test_flag_holder_has_no_truth_value():
  with pytest.raises(TypeError, match=r"\.value"):
    bool(configurations.nnx_graph_mode)


def test_env_readers(monkeypatch):
  monkeypatch.setenv("FLAXEN_TEST_B", "Off")
  assert configurations.static_bool_env("FLAXEN_TEST_B", True) is False
  monkeypatch.setenv("FLAXEN_TEST_B", "maybe")
  with pytest.raises(errors.ConfigFlagError, match="FLAXEN_TEST_B"):
    configurations.static_bool_env("FLAXEN_TEST_B", True)
  monkeypatch.setenv("FLAXEN_TEST_I", "7")
  assert configurations.static_int_env("FLAXEN_TEST_I", None) == 7
  assert configurations.static_int_env("FLAXEN_TEST_UNSET", 5) == 5


def test_environment_sets_the_default_at_import():
  env = dict(os.environ, NNX_GRAPH_MODE="0", FLAX_RETURN_FROZENDICT="yes")
  out = subprocess.run(
    [sys.executable, "-c",
     "import flaxen; print(flaxen.config.nnx_graph_mode, flaxen.config.flax_return_frozendict)"],
    env=env, capture_output=True, text=True, check=True,
  ).stdout.split()
  assert out == ["False", "True"]
