"""Random NNX graphs with shared references and cycles through split/merge, clone, state
and nnx.jit, checked against a walk of the graph written here.

A graph is up to four Modules and four Variables; each Module attribute holds a Variable,
a Module (itself, its parent, any other: cycles), a list or dict of those, or a static
value. The
reference walk visits attributes sorted by name and list items by index, depth first,
expanding each node at its first visit, which is the order NNX documents for paths.
"""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import nnx

CI, SLOW = settings.get_profile("ci"), settings.get_profile("slow")
NAMES = ["a", "b", "c", "d"]


class Bag(nnx.Module):
  pass


def is_node(x) -> bool:
  return isinstance(x, nnx.Object) and not isinstance(x, nnx.Variable)


def edges(root) -> list[tuple[tuple, object]]:
  """Every (path, value) reached from ``root``; a node's children only at its first visit."""
  out, seen = [], set()

  def visit(value, path):
    out.append((path, value))
    if not is_node(value) or id(value) in seen:
      return
    seen.add(id(value))
    if isinstance(value, list):
      items = list(enumerate(value))
    elif isinstance(value, dict):
      items = sorted(value.items(), key=lambda kv: kv[0])
    else:
      items = sorted(((k, v) for k, v in vars(value).items() if not k.startswith("_")),
                     key=lambda kv: kv[0])
    for k, v in items:
      visit(v, (*path, k))

  visit(root, ())
  return out


def unique_variables(root) -> dict[tuple, nnx.Variable]:
  """Each Variable reached from ``root`` once, keyed by the path of its first visit."""
  found, seen = {}, set()
  for path, v in edges(root):
    if isinstance(v, nnx.Variable) and id(v) not in seen:
      seen.add(id(v))
      found[path] = v
  return found


def assert_isomorphic(a, b, *, copies: bool):
  """Same shape, same sharing, same types and values; with ``copies`` no object shared."""
  ea, eb = edges(a), edges(b)
  assert [p for p, _ in ea] == [p for p, _ in eb]
  forward, backward = {}, {}
  for (path, x), (_, y) in zip(ea, eb, strict=True):
    assert type(x) is type(y), path
    if is_node(x) or isinstance(x, nnx.Variable):
      assert forward.setdefault(id(x), id(y)) == id(y), f"sharing differs at {path}"
      assert backward.setdefault(id(y), id(x)) == id(x), f"extra sharing at {path}"
      assert (x is not y) if copies else (x is y), path
    if isinstance(x, nnx.Variable):
      np.testing.assert_array_equal(x.value, y.value)
    elif not is_node(x):
      assert x == y, path


# ------------------------------------------------------------------------ graphs


@functools.cache  # building strategies is costly: once per size
def refs(n_nodes, n_vars):
  one = st.tuples(st.just("var"), st.integers(0, n_vars - 1)) | st.tuples(
    st.just("node"), st.integers(0, n_nodes - 1))
  return (one | one | st.tuples(st.just("list"), st.lists(one, min_size=1, max_size=2))
          | st.tuples(st.just("dict"), st.dictionaries(st.sampled_from("yx"), one, min_size=1))
          | st.tuples(st.just("static"), st.sampled_from([0, 1, "s"])))


@st.composite
def graphs(draw, shapes=((), (2,))):
  n_nodes, n_vars = draw(st.integers(1, 4)), draw(st.integers(1, 4))
  nodes = [Bag() for _ in range(n_nodes)]
  variables = []
  for _ in range(n_vars):
    kind = draw(st.sampled_from([nnx.Param, nnx.BatchStat]))
    shape = draw(st.sampled_from(shapes))
    values = draw(st.lists(st.integers(-9, 9), min_size=int(np.prod(shape)),
                           max_size=int(np.prod(shape))))
    variables.append(kind(np.array(values, np.float32).reshape(shape)))

  def resolve(ref):
    kind, arg = ref
    if kind == "list":
      return [resolve(r) for r in arg]
    if kind == "dict":
      return {k: resolve(r) for k, r in arg.items()}
    return {"var": variables, "node": nodes}[kind][arg] if kind != "static" else arg

  for node in nodes:
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1, max_size=3)):
      setattr(node, name, resolve(draw(refs(n_nodes, n_vars))))
  return nodes[0]


@CI
@given(graphs())
def test_split_merge_rebuilds_the_same_graph(root):
  graphdef, state = nnx.split(root)
  assert_isomorphic(root, nnx.merge(graphdef, state, copy=True), copies=True)
  graphdef, params, rest = nnx.split(root, nnx.Param, ...)
  assert_isomorphic(root, nnx.merge(graphdef, params, rest, copy=True), copies=True)
  assert_isomorphic(root, nnx.merge(graphdef, rest, params, copy=True), copies=True)
  # By default (Flax 0.12) the rebuilt graph has new nodes around the State's own
  # Variables, which split handed out: the root's.
  shared = unique_variables(nnx.merge(graphdef, params, rest))
  assert all(v is w for v, w in zip(shared.values(), unique_variables(root).values(),
                                    strict=True))


@CI
@given(graphs())
def test_clone_copies_every_node_and_keeps_sharing(root):
  copy = nnx.clone(root)
  assert_isomorphic(root, copy, copies=True)
  before = nnx.clone(root)
  for v in unique_variables(copy).values():
    v.value = v.value + 1  # the copy's Variables are its own
  assert_isomorphic(root, before, copies=True)


@CI
@given(graphs())
def test_state_holds_each_variable_once_at_its_first_path(root):
  expected = unique_variables(root)
  flat = dict(nnx.state(root).flat_state())
  assert list(flat) == list(expected)
  for path, v in expected.items():
    assert flat[path] is v  # the graph's own Variable, as in Flax 0.12


@CI
@given(graphs())
def test_update_writes_into_the_shared_variables(root):
  graphdef, state = nnx.split(root)
  doubled = nnx.merge(graphdef, state, copy=True)  # Variables of its own
  for v in unique_variables(doubled).values():
    v.value = v.value * 2 + 1
  before = {p: np.asarray(v.value) for p, v in unique_variables(root).items()}
  nnx.update(root, nnx.state(doubled))
  for path, v in unique_variables(root).items():
    np.testing.assert_array_equal(v.value, before[path] * 2 + 1)


# ------------------------------------------------------------------------- nnx.jit


def bump(root):
  """Add 1 to every Variable once; return the sum of their values before."""
  total = 0.0
  for v in unique_variables(root).values():
    total = total + v.value.sum()
    v.value = v.value + 1
  return total


OPS = ["share", "node", "new", "delete", "static", "shape"]
ops = st.tuples(st.sampled_from(OPS), st.integers(0, 7), st.sampled_from(NAMES),
                st.integers(0, 7))


def apply_op(root, op):
  """Apply the structural change ``op`` to the graph at ``root``. Nodes and Variables are
  picked by their index in the walk, so the same op changes two isomorphic graphs alike."""
  kind, i, name, j = op
  nodes = list({id(v): v for _, v in edges(root) if isinstance(v, Bag)}.values())
  variables = list(unique_variables(root).values())
  node = nodes[i % len(nodes)]
  if kind == "share":
    setattr(node, name, variables[j % len(variables)] if variables else nnx.Param(np.ones(())))
  elif kind == "node":
    setattr(node, name, nodes[j % len(nodes)])
  elif kind == "new":
    setattr(node, name, [nnx.BatchStat(np.full((2,), 3.0, np.float32))])
  elif kind == "static":
    setattr(node, name, ["s", "t", 0, 1][j % 4])
  elif kind == "shape" and variables:  # a new shape is not structural, but a retrace
    variables[j % len(variables)].value = np.zeros((3,), np.float32)
  elif kind == "delete" and name in vars(node):
    if len([k for k in vars(node) if not k.startswith("_")]) > 1:
      delattr(node, name)


def bump_then(root, op):
  """bump, then (if ``op`` is given) change the graph's structure."""
  total = bump(root)
  if op is not None:
    apply_op(root, op)
  return total


jit_bump_then = nnx.jit(bump_then, static_argnums=1)


@settings(CI, max_examples=50)  # most graphs are a new structure: one compile each
@given(graphs(shapes=((),)), st.data())
def test_jit_matches_eager_across_structural_changes(root, data):
  """Changes made inside the jitted function reach the caller's objects; changes made
  between calls are seen by the next call (the cached graph walk is invalidated)."""
  for _ in range(3):
    op, inside = data.draw(ops), data.draw(st.booleans())
    eager = nnx.clone(root)
    expected = bump_then(eager, op if inside else None)
    np.testing.assert_allclose(jit_bump_then(root, op if inside else None), expected)
    assert_isomorphic(eager, root, copies=True)  # same structure and values after the call
    if not inside:
      apply_op(root, op)


@pytest.mark.slow
@SLOW
@given(graphs(), st.data())
def test_graph_round_trips_long(root, data):
  assert_isomorphic(root, nnx.merge(*nnx.split(root), copy=True), copies=True)
  assert_isomorphic(root, nnx.clone(root), copies=True)
  eager = nnx.clone(root)
  np.testing.assert_allclose(jit_bump_then(root, None), bump(eager))
  assert_isomorphic(eager, root, copies=True)


@CI
@given(graphs())
def test_merge_through_builders_matches_the_interpreter(root):
  """From its second merge on, a GraphDef's flat entries are built by compiled builders
  (graph_builder); the graph must be the one the interpreter builds."""
  from flaxen.nnx import graph, graph_builder

  graphdef, state = nnx.split(root)
  interpreted = graph.unflatten_state(graphdef, state)[0]
  for _ in range(3):
    assert_isomorphic(interpreted, nnx.merge(graphdef, state), copies=True)
  assert isinstance(graphdef._plan, dict)
  assert_isomorphic(root, graph_builder.build(graphdef, state, graph_builder.plan(graphdef)),
                    copies=True)
