"""nnx.State: nested mapping, flat form, filtering, pure dicts, pytree behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, nnx


def _state():
  return nnx.State({
    "layers": {0: {"w": nnx.Param(jnp.ones(2))}, 1: {"w": nnx.Param(jnp.zeros(2))}},
    "mean": nnx.BatchStat(jnp.ones(1)),
  })


def test_nested_access_and_flat_state():
  s = _state()
  assert isinstance(s.layers, nnx.State) and isinstance(s["layers"][0]["w"], nnx.Param)
  flat = s.flat_state()
  assert flat.paths == (("layers", 0, "w"), ("layers", 1, "w"), ("mean",))
  rebuilt = nnx.State.from_flat_path(flat)
  assert rebuilt == s


def test_pytree_keys_print_as_paths():
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(_state())]
  assert paths == ["['layers'][0]['w'].value", "['layers'][1]['w'].value", "['mean'].value"]


def test_tree_map_keeps_variable_types():
  doubled = jax.tree.map(lambda x: 2 * x, _state())
  assert isinstance(doubled.mean, nnx.BatchStat)
  np.testing.assert_array_equal(doubled.layers[0].w.value, 2 * jnp.ones(2))


def test_filter_split_merge():
  s = _state()
  params, stats = s.filter(nnx.Param, nnx.BatchStat)
  assert "mean" in stats and "mean" not in params
  assert nnx.State.merge(params, stats) == s
  assert (params | stats) == s
  with pytest.raises(errors.UnmatchedFilterError, match="mean"):
    s.split(nnx.Param)
  assert s.split(nnx.Param, ...)[1] == stats


def test_pure_dict_roundtrip():
  s = _state()
  pure = s.to_pure_dict()
  assert isinstance(pure["layers"][0]["w"], jax.Array)
  pure = jax.tree.map(lambda x: x + 1, pure)
  pure["layers"] = {str(k): v for k, v in pure["layers"].items()}  # checkpoint-style keys
  s.replace_by_pure_dict(pure)
  assert isinstance(s.layers[1].w, nnx.Param)
  np.testing.assert_array_equal(s.layers[1].w.value, jnp.ones(2))


def test_state_through_jax_jit():
  @jax.jit
  def f(s):
    return jax.tree.map(lambda x: x * 3, s)

  out = f(_state())
  assert isinstance(out, nnx.State) and isinstance(out.mean, nnx.BatchStat)
  np.testing.assert_array_equal(out.mean.value, 3 * jnp.ones(1))


def test_repr_shows_nesting():
  text = repr(_state())
  assert text.startswith("State({") and "'mean': BatchStat(" in text


def test_module_level_state_functions():
  s = _state()
  assert nnx.from_flat_state(nnx.to_flat_state(s)) == s
  params, stats = nnx.filter_state(s, nnx.Param, nnx.BatchStat)
  assert nnx.merge_state(params, stats) == s
  assert nnx.split_state(s, nnx.Param, ...)[1] == stats
  doubled = nnx.map_state(lambda path, v: v.replace(v.value * 2), s)
  np.testing.assert_array_equal(doubled.mean.value, 2 * jnp.ones(1))
  pure = nnx.to_pure_dict(s)
  stringly = {"layers": {"0": pure["layers"][0], "1": pure["layers"][1]}, "mean": pure["mean"]}
  assert set(nnx.restore_int_paths(stringly)["layers"]) == {0, 1}
  nnx.replace_by_pure_dict(s, {"mean": jnp.zeros(1)})
  assert isinstance(s.mean, nnx.BatchStat) and not s.mean.value.any()
  with pytest.raises(errors.StatePathError, match="nope"):
    s.replace_by_pure_dict({"nope": 1})
  with pytest.raises(ValueError):
    s.replace_by_pure_dict({"layers": {5: {"w": 1}}})


def test_missing_key_and_invalid_filter_errors():
  with pytest.raises(errors.MissingKeyError, match="'nope'"):
    _state().nope
  with pytest.raises(AttributeError):
    nnx.Dict(a=1).b
  assert not hasattr(_state(), "nope")
  with pytest.raises(errors.InvalidFilterError):
    _state().filter(3)
  with pytest.raises(TypeError):
    nnx.split(nnx.Linear(1, 1, rngs=nnx.Rngs(0)), 2.5)
