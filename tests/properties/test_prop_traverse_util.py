"""Random nested dicts through traverse_util: flatten/unflatten round trips (tuple and
string keys, empty nodes kept or pruned, is_leaf), path_aware_map, against recursive
references written here."""

from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import traverse_util
from flaxen.core import freeze

CI = settings.get_profile("ci")
keys = st.text("abc_", min_size=1, max_size=3)
nested = st.recursive(st.integers(), lambda c: st.dictionaries(keys, c, max_size=3),
                      max_leaves=12).filter(lambda x: isinstance(x, dict))


def ref_flatten(x, prefix=(), keep_empty=False, max_depth=None):
  out = {}
  for k, v in x.items():
    path = (*prefix, k)
    if isinstance(v, dict) and (max_depth is None or len(path) < max_depth):
      if v:
        out.update(ref_flatten(v, path, keep_empty, max_depth))
      elif keep_empty:
        out[path] = traverse_util.empty_node
    else:
      out[path] = v
  return out


def pruned(x):
  """``x`` without empty dicts, recursively (what a round trip without empty nodes gives)."""
  out = {}
  for k, v in x.items():
    v = pruned(v) if isinstance(v, dict) else v
    if v != {}:
      out[k] = v
  return out


def ref_map(f, x, prefix=()):
  return {k: ref_map(f, v, (*prefix, k)) if isinstance(v, dict) else f((*prefix, k), v)
          for k, v in x.items()}


@CI
@given(nested)
def test_flatten_unflatten_round_trips(x):
  flat = traverse_util.flatten_dict(x, keep_empty_nodes=True)
  assert flat == ref_flatten(x, keep_empty=True)
  assert traverse_util.unflatten_dict(flat) == x
  assert traverse_util.flatten_dict(freeze(x), keep_empty_nodes=True) == flat
  flat = traverse_util.flatten_dict(x)
  assert flat == ref_flatten(x)
  assert traverse_util.unflatten_dict(flat) == pruned(x)


@CI
@given(nested)
def test_string_keys_join_with_sep(x):
  flat = traverse_util.flatten_dict(x, sep="/")
  assert flat == {"/".join(p): v for p, v in ref_flatten(x).items()}
  assert traverse_util.unflatten_dict(flat, sep="/") == pruned(x)


@CI
@given(nested, st.integers(1, 3))
def test_is_leaf_stops_at_a_depth(x, depth):
  flat = traverse_util.flatten_dict(x, is_leaf=lambda path, _: len(path) >= depth)
  assert flat == ref_flatten(x, max_depth=depth)


@CI
@given(nested)
def test_path_aware_map_sees_each_leaf_with_its_path(x):
  f = lambda path, v: (len(path), "/".join(path), v)
  assert traverse_util.path_aware_map(f, x) == ref_map(f, x)
