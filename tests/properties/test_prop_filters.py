"""Random filter expressions against a reference evaluator written here.

NNX filters (types, tags, ``...``/True/None/False, tuples, lists, OfType, WithTag,
PathContains, Any, All, Not, Everything, Nothing) are drawn as small syntax trees; each is
turned into a real filter and checked against :func:`ref` on every (path, value) of a
pool, and through ``nnx.split`` / ``nnx.state`` / ``State.filter`` on a random module,
where each Variable goes to the first filter it matches. Linen collection filters
(``flaxen.core.filters``) get the same treatment, ``union_filters`` included.
"""

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import errors, nnx
from flaxen.core import filters as core_filters
from flaxen.nnx import filterlib

CI, SLOW = settings.get_profile("ci"), settings.get_profile("slow")


class MyParam(nnx.Param):
  pass


TYPES = [nnx.Variable, nnx.Param, MyParam, nnx.BatchStat, nnx.Cache, nnx.Intermediate,
         nnx.RngState, nnx.RngKey, nnx.RngCount]
TAGS = ["default", "dropout"]
KEYS = ["a", "bias", "kernel", "sub", 0, 1]


def make_value(kind: str, tag: str):
  if kind == "key":
    return nnx.RngKey(jax.random.key(0), tag=tag)
  if kind == "count":
    return nnx.RngCount(jnp.zeros((), jnp.uint32), tag=tag)
  return {"param": nnx.Param, "mine": MyParam, "batch": nnx.BatchStat, "cache": nnx.Cache,
          "inter": nnx.Intermediate}[kind](jnp.zeros(()))


KINDS = ["param", "mine", "batch", "cache", "inter", "key", "count"]
POOL = [((k1, k2), make_value(kind, tag)) for kind in KINDS for tag in TAGS
        for k1, k2 in [("a", 0), ("sub", "bias"), ("kernel", 1)]]
POOL += [(("bias",), jnp.zeros(())), (("a", "kernel_2"), jnp.zeros(()))]  # plain arrays

# ------------------------------------------------------------------- syntax trees

leaf_asts = (
  st.tuples(st.just("type"), st.sampled_from(TYPES))
  | st.tuples(st.just("tag"), st.sampled_from(TAGS))
  | st.tuples(st.just("lit"), st.sampled_from([..., True, None, False]))
  | st.tuples(st.just("path"), st.sampled_from(KEYS + ["ker", "0"]), st.booleans())
  | st.tuples(st.just("oftype"), st.sampled_from(TYPES))
  | st.tuples(st.just("withtag"), st.sampled_from(TAGS))
  | st.tuples(st.sampled_from(["everything", "nothing"]))
)


def composite_asts(children):
  many = st.lists(children, max_size=3).map(tuple)
  return (st.tuples(st.sampled_from(["tuple", "list", "any", "all"]), many)
          | st.tuples(st.just("not"), children))


asts = st.recursive(leaf_asts, composite_asts, max_leaves=6)


def build(ast):
  """The filter that the syntax tree ``ast`` describes."""
  op, *args = ast
  if op in ("type", "tag", "lit"):
    return args[0]
  simple = {"path": filterlib.PathContains, "oftype": filterlib.OfType,
            "withtag": filterlib.WithTag, "everything": filterlib.Everything,
            "nothing": filterlib.Nothing}
  if op in simple:
    return simple[op](*args)
  if op == "not":
    return filterlib.Not(build(args[0]))
  subs = [build(a) for a in args[0]]
  return {"tuple": tuple, "list": list}[op](subs) if op in ("tuple", "list") else (
    filterlib.Any if op == "any" else filterlib.All)(*subs)


def ref(ast, path, value) -> bool:
  """What Flax documents each filter to mean, evaluated directly."""
  op, *args = ast
  if op in ("type", "oftype"):
    return isinstance(value, args[0])
  if op in ("tag", "withtag"):
    return getattr(value, "tag", None) == args[0]
  if op == "lit":
    return args[0] is ... or args[0] is True
  if op == "path":
    key, exact = args
    return key in path if exact else any(str(key) in str(k) for k in path)
  if op in ("everything", "nothing"):
    return op == "everything"
  if op == "not":
    return not ref(args[0], path, value)
  results = [ref(a, path, value) for a in args[0]]
  return any(results) if op in ("tuple", "any") else all(results)


@CI
@given(asts)
def test_predicates_match_the_reference(ast):
  predicate = filterlib.to_predicate(build(ast))
  for path, value in POOL:
    assert predicate(path, value) == ref(ast, path, value), (path, value)


# -------------------------------------------------------- splitting a random module


class Bag(nnx.Module):
  pass


@st.composite
def modules(draw):
  """A module of nested Bags and lists holding Variables; returns (module, [(path, var)])."""
  placed = []

  def fill(node, prefix, depth):
    for name in draw(st.lists(st.sampled_from(["a", "bias", "kernel", "sub"]), unique=True,
                              min_size=1, max_size=3)):
      path = (*prefix, name)
      if name == "sub" and depth < 2:
        setattr(node, name, Bag())
        fill(getattr(node, name), path, depth + 1)
      elif draw(st.booleans()):
        kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=2))
        values = [make_value(k, draw(st.sampled_from(TAGS))) for k in kinds]
        setattr(node, name, values)
        placed.extend(((*path, i), v) for i, v in enumerate(values))
      else:
        value = make_value(draw(st.sampled_from(KINDS)), draw(st.sampled_from(TAGS)))
        setattr(node, name, value)
        placed.append((path, value))

  root = Bag()
  fill(root, (), 0)
  return root, placed


def first_match(asts_, path, value) -> int:
  return next((i for i, a in enumerate(asts_) if ref(a, path, value)), -1)


def flat_types(state) -> dict:
  return {path: type(v) for path, v in state.flat_state()}


@CI
@given(modules(), st.lists(asts, min_size=1, max_size=3), st.booleans())
def test_split_puts_each_variable_under_its_first_matching_filter(module, filter_asts, rest):
  model, placed = module
  if rest:
    filter_asts = [*filter_asts, ("lit", ...)]
  filters = [build(a) for a in filter_asts]
  groups = [first_match(filter_asts, path, v) for path, v in placed]
  expected = [{p: type(v) for (p, v), g in zip(placed, groups, strict=True) if g == i}
              for i in range(len(filters))]
  if -1 in groups:
    with pytest.raises(errors.UnmatchedFilterError):
      nnx.split(model, *filters)
    with pytest.raises(errors.UnmatchedFilterError):
      nnx.state(model).split(*filters)
  else:
    _, *states = nnx.split(model, *filters)
    assert [flat_types(s) for s in states] == expected
    whole = nnx.merge(*nnx.split(model, *filters))
    assert flat_types(nnx.state(whole)) == {p: type(v) for p, v in placed}
  # nnx.state and State.filter drop what matches no filter instead of raising
  by_state = nnx.state(model, *filters)
  by_state = by_state if len(filters) > 1 else (by_state,)
  assert [flat_types(s) for s in by_state] == expected
  by_filter = nnx.state(model).filter(*filters)
  by_filter = by_filter if len(filters) > 1 else (by_filter,)
  assert [flat_types(s) for s in by_filter] == expected


# ---------------------------------------------------------- Linen collection filters

COLLECTIONS = ["params", "batch_stats", "cache", "intermediates", "x"]
names_ = st.sampled_from(COLLECTIONS)
plain_filters = (
  st.booleans() | names_
  | st.lists(names_, max_size=3) | st.lists(names_, max_size=3).map(tuple)
  | st.sets(names_, max_size=3) | st.frozensets(names_, max_size=3)
)
collection_filters = st.recursive(plain_filters, lambda f: st.builds(core_filters.DenyList, f),
                                  max_leaves=3)


def ref_in(f, col) -> bool:
  if isinstance(f, bool):
    return f
  if isinstance(f, str):
    return f == col
  if isinstance(f, core_filters.DenyList):
    return not ref_in(f.deny, col)
  return col in f


@CI
@given(collection_filters)
def test_collection_filters_match_the_reference(f):
  assert core_filters.check_filter(f) is f
  assert [core_filters.in_filter(f, c) for c in COLLECTIONS] == [ref_in(f, c) for c in COLLECTIONS]


@CI
@given(collection_filters, collection_filters)
def test_union_matches_either(a, b):
  union = core_filters.union_filters(a, b)
  core_filters.check_filter(union)
  for c in COLLECTIONS:
    assert core_filters.in_filter(union, c) == (ref_in(a, c) or ref_in(b, c)), c


@CI
@given(st.integers() | st.dictionaries(names_, names_, min_size=1) | st.lists(st.integers(),
                                                                             min_size=1))
def test_invalid_collection_filters_raise(f):
  with pytest.raises(errors.InvalidFilterError):
    core_filters.check_filter(f)
  with pytest.raises(errors.InvalidFilterError):
    core_filters.check_filter(core_filters.DenyList(f))


@pytest.mark.slow
@SLOW
@given(modules(), st.lists(asts, min_size=1, max_size=4))
def test_state_filter_long(module, filter_asts):
  model, placed = module
  filters = [build(a) for a in filter_asts]
  groups = [first_match(filter_asts, path, v) for path, v in placed]
  expected = [{p: type(v) for (p, v), g in zip(placed, groups, strict=True) if g == i}
              for i in range(len(filters))]
  got = nnx.state(model, *filters)
  got = got if len(filters) > 1 else (got,)
  assert [flat_types(s) for s in got] == expected
