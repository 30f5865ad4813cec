"""Every public layer and layer function is in the numerics tables (or excluded with a
reason), so a new layer cannot skip the jit, gradient and dtype checks."""

import inspect

import test_num_dtypes as dtype_tables
from num_cases import (
  FUNCTIONS,
  FUNCTIONS_EXCLUDED,
  LINEN,
  LINEN_EXCLUDED,
  NNX,
  NNX_EXCLUDED,
  covers,
)

import flaxen.linen as nn
from flaxen import nnx

# Public Linen classes whose dtype behaviour is not a single output-dtype rule.
DTYPE_EXCLUDED = {
  "Embed": "ids are integers: test_embed_lookup_dtype covers lookups, the table attend",
  "BatchApply": "not a Module: it reshapes around any callable, whose dtype rule applies",
}


def linen_layers():
  return {name for name in dir(nn) if not name.startswith("_")
          and inspect.isclass(getattr(nn, name))}


def nnx_layers():
  return {name for name in nnx.__all__ if inspect.isclass(getattr(nnx, name))
          and issubclass(getattr(nnx, name), nnx.Module)}


def layer_functions():
  """The public functions of the activation, pooling and attention namespaces."""
  names = set(nn.activation.__all__) | {"avg_pool", "max_pool", "min_pool", "pool"}
  names |= {n for n in nn.attention.__all__ if inspect.isfunction(getattr(nn, n))}
  return {n for n in names if callable(getattr(nn, n)) and not inspect.isclass(getattr(nn, n))}


def test_every_linen_layer_is_in_the_table():
  missing = linen_layers() - covers(LINEN) - set(LINEN_EXCLUDED)
  assert not missing, f"add numerics cases to tests/numerics/num_cases.py LINEN: {missing}"
  missing = linen_layers() - covers(dtype_tables.LINEN) - set(LINEN_EXCLUDED) - set(
    DTYPE_EXCLUDED)
  assert not missing, f"add dtype cases to tests/numerics/test_num_dtypes.py: {missing}"


def test_every_nnx_layer_is_in_the_table():
  missing = nnx_layers() - covers(NNX) - set(NNX_EXCLUDED)
  assert not missing, f"add numerics cases to tests/numerics/num_cases.py NNX: {missing}"
  missing = nnx_layers() - covers(dtype_tables.NNX) - set(NNX_EXCLUDED) - set(DTYPE_EXCLUDED)
  assert not missing, f"add dtype cases to tests/numerics/test_num_dtypes.py: {missing}"


def test_every_layer_function_is_in_the_table():
  missing = layer_functions() - covers(FUNCTIONS) - set(FUNCTIONS_EXCLUDED)
  assert not missing, f"add cases to tests/numerics/num_cases.py FUNCTIONS: {missing}"
  # NNX exports the same functions (one implementation for both APIs), or has its own case.
  for name in layer_functions() & set(nnx.__all__) - set(FUNCTIONS_EXCLUDED):
    assert getattr(nnx, name) is getattr(nn, name) or f"nnx.{name}" in FUNCTIONS, name


def test_tables_name_real_layers():
  """No stale entries: every case and exclusion names a public layer."""
  assert covers(LINEN) | set(LINEN_EXCLUDED) <= linen_layers()
  assert covers(NNX) | set(NNX_EXCLUDED) <= nnx_layers()
  linen_functions = {n for n in covers(FUNCTIONS) if not n.startswith("nnx.")}
  assert linen_functions | set(FUNCTIONS_EXCLUDED) <= layer_functions()
  assert {n[4:] for n in FUNCTIONS if n.startswith("nnx.")} <= set(nnx.__all__)
