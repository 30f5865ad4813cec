"""NNX misuses that raise flaxen errors: tracers assigned to Variables made outside the
trace, bad arguments to nnx.merge, arrays in Variable metadata, and in-place mutation of
plain containers seen by nnx.jit."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import pytest

from flaxen import errors, nnx


def _model() -> nnx.Linear:
  return nnx.Linear(2, 2, rngs=nnx.Rngs(0))


@contextlib.contextmanager
def _raises(cls: type, *words: str):
  """Expects ``cls``, a FlaxenError whose message names ``words`` and a fix."""
  with pytest.raises(cls) as info:
    yield info
  assert isinstance(info.value, errors.FlaxenError)
  for w in (*words, "Fix:"):
    assert w in str(info.value), (w, str(info.value))


# ------------------------------------------------ tracers into closed-over Variables


@pytest.mark.parametrize("transform", ["jit", "grad", "vmap"])
def test_closed_over_variable_mutated_inside_a_transform(transform):
  model = _model()
  kernel = model.kernel.value

  def inner(x):
    model.kernel.value = model.kernel.value * x
    return jnp.sum(x)

  fn = {"jit": nnx.jit(inner), "grad": nnx.grad(inner),
        "vmap": nnx.vmap(inner)}[transform]
  with _raises(errors.TraceContextError, "Param", "(2, 2)", "as an argument"):
    fn(jnp.ones((3,)) if transform == "vmap" else jnp.ones(()))
  assert model.kernel.value is kernel  # nothing was left behind


def test_inplace_operators_and_raw_value_are_checked_too():
  model = _model()

  @jax.jit
  def f(x):
    model.bias.value += x

  with _raises(errors.TraceContextError, "Param"):
    f(jnp.ones(2))

  @jax.jit
  def g(x):
    model.bias.raw_value = x

  with _raises(errors.TraceContextError):
    g(jnp.ones(2))


def test_variables_passed_to_transforms_and_merged_inside_stay_assignable():
  model = _model()
  graphdef, state = nnx.split(model)

  @nnx.jit
  def f(m, x):
    m.bias.value = m.bias.value + x  # rebuilt inside the trace
    return m.bias.value

  @jax.jit
  def g(state, x):
    m = nnx.merge(graphdef, state)  # made inside this trace
    m.bias.value = x
    inner = nnx.Param(x)
    inner.value = x * 2
    return nnx.state(m), inner.value

  y = f(model, jnp.ones(2))
  assert jnp.allclose(y, jnp.ones(2)) and jnp.allclose(model.bias.value, y)
  new, doubled = g(state, jnp.full(2, 3.0))
  assert jnp.allclose(new["bias"].value, 3.0) and jnp.allclose(doubled, 6.0)


def test_concrete_values_at_top_level_are_not_checked():
  v = nnx.Param(jnp.zeros(2))
  v.value = jnp.ones(2)
  assert jnp.allclose(v.value, 1.0)


# ------------------------------------------------------------------------ merge


def test_merge_with_something_that_is_not_a_graphdef():
  _, state = nnx.split(_model())
  with _raises(errors.NotAGraphDefError, "GraphDef", "int", "nnx.split"):
    nnx.merge(3, state)


def test_merge_with_an_extra_state_entry_names_it():
  graphdef, params = nnx.split(_model())
  params["extra"] = {"w": nnx.Param(jnp.ones(1))}
  with _raises(errors.UnexpectedStateError, "extra/w", "nnx.update"):
    nnx.merge(graphdef, params)
  graphdef, params, rest = nnx.split(nnx.Rngs(0), nnx.RngKey, ...)
  rest["default"]["more"] = nnx.RngCount(jnp.zeros((), jnp.uint32))
  with _raises(errors.UnexpectedStateError, "default/more"):
    nnx.merge(graphdef, params, rest)


def test_merge_with_a_missing_state_entry_names_it():
  graphdef, params, _ = nnx.split(nnx.BatchNorm(2, rngs=nnx.Rngs(0)), nnx.Param, ...)
  with _raises(errors.MissingStateError, "mean"):
    nnx.merge(graphdef, params)


def test_merge_with_shared_variables_is_not_an_extra():
  shared = nnx.Param(jnp.ones(2))
  graphdef, state = nnx.split(nnx.Dict(a=shared, b=shared))
  d = nnx.merge(graphdef, state)
  assert d["a"] is d["b"]


# --------------------------------------------------------------------- metadata


def test_array_or_variable_in_variable_metadata():
  with _raises(errors.VariableMetadataValueError, "Param", "'scale'", "value"):
    nnx.Param(jnp.ones(2), scale=jnp.ones(2))
  v = nnx.Param(jnp.ones(2))
  with _raises(errors.VariableMetadataValueError, "'other'"):
    v.set_metadata(other=nnx.Param(1.0))
  with _raises(errors.VariableMetadataValueError, "'mask'"):
    v.mask = jnp.zeros(2)
  with _raises(errors.VariableMetadataValueError, "'mask'"):
    v.replace(mask=jnp.zeros(2))
  v.set_metadata(sharding=("x",), scale=2.0)  # static values are fine
  assert v.sharding == ("x",)


# ------------------------------------------- in-place changes of static containers


class _Config(nnx.Module):
  def __init__(self):
    self.sizes = [1, 2]
    self.cfg = {"widths": [4], "name": "a"}
    self.w = nnx.Param(jnp.ones(2))


@nnx.jit
def _lengths(m):
  return m.w.value * 0 + len(m.sizes) + 10 * len(m.cfg["widths"])


def test_jit_sees_in_place_changes_of_static_lists_and_dicts():
  m = _Config()
  assert float(_lengths(m)[0]) == 12
  m.sizes.append(3)
  assert float(_lengths(m)[0]) == 13
  m.cfg["widths"].extend([5, 6])  # nested
  assert float(_lengths(m)[0]) == 33
  m.cfg["extra"] = [1]
  m.cfg["extra"].append(2)  # added later, tracked too
  assert float(_lengths(m)[0]) == 33
  copy = nnx.merge(*nnx.split(m))  # merged copies track theirs
  copy.sizes.pop()
  assert float(_lengths(copy)[0]) == 32 and float(_lengths(m)[0]) == 33


def test_static_containers_stay_lists_and_dicts():
  m = _Config()
  assert m.sizes == [1, 2] and isinstance(m.sizes, list) and m.cfg["name"] == "a"
  assert jax.tree.leaves(m.sizes) == [1, 2]
  assert jnp.array(m.sizes).dtype == jnp.array([1, 2]).dtype
  before = nnx.graphdef(m)
  m.sizes[0] = 7
  after = nnx.graphdef(m)
  assert before != after and after == nnx.graphdef(nnx.merge(*nnx.split(m)))
  assert type(m.cfg["widths"]) is not list and type(list(m.cfg["widths"])) is list


def test_module_marked_static_in_nnx_jit_raises():
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  with pytest.raises(errors.StaticGraphNodeError) as info:
    nnx.jit(lambda m, x: m(x), static_argnums=0)(model, jnp.ones((1, 2)))
  assert isinstance(info.value, errors.FlaxenError)
  assert "argument 0" in str(info.value) and "Linear" in str(info.value)
  assert "Fix:" in str(info.value)
  scaled = nnx.jit(lambda m, x, k: m(x) * k, static_argnames="k")
  assert scaled(model, jnp.ones((1, 2)), k=2).shape == (1, 3)
  with pytest.raises(errors.StaticGraphNodeError, match="'k'"):
    scaled(model, jnp.ones((1, 2)), k=[model])
