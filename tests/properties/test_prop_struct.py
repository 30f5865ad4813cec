"""Properties of struct dataclasses of random shapes: classes with random data and static
fields (defaults, kw_only, PyTreeNode or decorator) nested in each other and in dicts and
lists, through JAX's flatten/unflatten, jax.jit and flaxen.serialization.

Classes are built once per field layout and leaves drawn from a few shapes, so that jit
compiles a bounded number of programs across examples.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flaxen import errors, serialization, struct, traverse_util

CI, SLOW = settings.get_profile("ci"), settings.get_profile("slow")
SHAPES = [(), (2,), (2, 3)]
DTYPES = [np.float32, np.int32]


@functools.cache
def make_class(layout: tuple[bool, ...], kw_only: bool, style: str, parent: tuple = ()) -> type:
  """A struct class with fields f0, f1, ...; layout[i] says whether fi is static. ``style``
  is "base" (a PyTreeNode subclass), "decorator" or "slots" (struct.dataclass). With a
  ``parent`` layout it subclasses that class, declaring its first fields again (static
  or data as ``layout`` says) and adding the rest."""
  annotations = {f"f{i}": object for i in range(len(layout))}
  body = {"__annotations__": annotations}
  for i, static in enumerate(layout):
    if static:
      body[f"f{i}"] = struct.field(pytree_node=False)
  name = f"S{''.join('s' if s else 'd' for s in layout)}{'k' if kw_only else ''}"
  bases = (make_class(parent, kw_only, style),) if parent else ()
  if style == "base":
    return type(name, bases or (struct.PyTreeNode,), body, kw_only=kw_only)
  return struct.dataclass(type(name, bases, body), kw_only=kw_only, slots=style == "slots")


def data_fields(x) -> list[str]:
  return [f.name for f in dataclasses.fields(x) if f.metadata.get("pytree_node", True)]


def static_fields(x) -> list[str]:
  return [f.name for f in dataclasses.fields(x) if not f.metadata.get("pytree_node", True)]



@st.composite
def arrays(draw, shapes=SHAPES, dtypes=DTYPES):
  shape, dtype = draw(st.sampled_from(shapes)), draw(st.sampled_from(dtypes))
  values = draw(st.lists(st.integers(-50, 50), min_size=int(np.prod(shape)),
                         max_size=int(np.prod(shape))))
  x = np.array(values, dtype).reshape(shape)
  return jnp.asarray(x) if draw(st.booleans()) else x


statics = st.none() | st.integers(-3, 3) | st.text("ab", max_size=2) | st.tuples(st.integers(0, 2))


@functools.cache  # building strategies is costly: once per size
def layouts(max_fields: int):
  return st.lists(st.booleans(), min_size=1, max_size=max_fields).map(tuple)


@st.composite
def structs(draw, children, statics=statics, max_fields=4, subclasses=True):
  layout = draw(layouts(max_fields))
  parent = draw(layouts(max_fields)) if subclasses and draw(st.booleans()) else ()
  style = draw(st.sampled_from(["base", "decorator", "slots"]))
  cls = make_class(layout, draw(st.booleans()), style, parent)
  static = set(static_fields(cls))
  values = {f.name: draw(statics if f.name in static else children)
            for f in dataclasses.fields(cls)}
  return cls(**values)


def containers(children):
  return (
    structs(children) | structs(children)  # weighted towards structs
    | st.dictionaries(st.text("xyz", min_size=1, max_size=2), children, max_size=2)
    | st.lists(children, max_size=2)
  )


trees = structs(st.recursive(arrays(), containers, max_leaves=4))


def assert_equal_trees(a, b, same_type=True):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    assert type(x) is type(y) or not same_type
    assert x.dtype == y.dtype and x.shape == y.shape
    np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------- flatten/unflatten


@CI
@given(trees)
def test_flatten_follows_data_fields_in_declaration_order(tree):
  paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
  first_fields = [p[0].name for p in paths]
  expected = [f for f in data_fields(tree) for _ in jax.tree.leaves(getattr(tree, f))]
  assert first_fields == expected
  leaves, treedef = jax.tree.flatten(tree)
  rebuilt = jax.tree.unflatten(treedef, leaves)
  assert type(rebuilt) is type(tree)
  assert all(a is b for a, b in zip(jax.tree.leaves(rebuilt), leaves, strict=True))
  assert [getattr(rebuilt, f) for f in static_fields(tree)] == [
    getattr(tree, f) for f in static_fields(tree)
  ]


@CI
@given(trees, st.data())
def test_static_fields_are_part_of_the_structure(tree, data):
  if not static_fields(tree):
    return
  name = data.draw(st.sampled_from(static_fields(tree)))
  new = data.draw(statics)
  changed = tree.replace(**{name: new})
  same = new == getattr(tree, name) and type(new) is type(getattr(tree, name))
  assert (jax.tree.structure(changed) == jax.tree.structure(tree)) == same
  assert jax.tree.leaves(changed) == jax.tree.leaves(tree)


# ------------------------------------------------------------------------------- jit


# jit compiles once per structure, shapes and dtypes: these trees come from a small space.
few_arrays = arrays(shapes=[(), (2,)], dtypes=[np.float32])
few_statics = st.sampled_from([None, "a"])
jit_trees = structs(few_arrays | structs(few_arrays, few_statics, 2, False), few_statics, 2,
                    False)
TRACES = []


@jax.jit
def affine(tree):
  TRACES.append(jax.tree.structure(tree))
  return jax.tree.map(lambda x: x * 2 + 1, tree)


@settings(CI, max_examples=100)  # most examples are a new structure: one compile each
@given(jit_trees)
def test_jit_maps_leaves_and_keeps_static_fields(tree):
  out = affine(tree)
  expected = jax.tree.map(lambda x: jnp.asarray(np.asarray(x) * 2 + 1), tree)
  assert_equal_trees(out, expected)
  traces = len(TRACES)
  again = affine(jax.tree.map(lambda x: x + 1, tree))  # same structure, new values: cached
  assert len(TRACES) == traces
  assert_equal_trees(again, jax.tree.map(lambda x: jnp.asarray(np.asarray(x) * 2 + 3), tree))


# --------------------------------------------------------------------- serialization


def zeros_like(tree):
  return jax.tree.map(lambda x: np.zeros_like(x) if isinstance(x, np.ndarray)
                      else jnp.zeros_like(x), tree)


def node_at(tree, path):
  for key in path:
    if isinstance(tree, dict):
      tree = tree[key]
    elif isinstance(tree, list | tuple):
      tree = tree[int(key)]
    else:
      tree = getattr(tree, key)
  return tree


@CI
@given(trees)
def test_bytes_restore_into_a_zero_target(tree):
  state = serialization.to_state_dict(tree)
  assert sorted(state) == sorted(data_fields(tree))
  restored = serialization.from_bytes(zeros_like(tree), serialization.to_bytes(tree))
  assert_equal_trees(restored, tree, same_type=False)  # arrays restore as NumPy, as in Flax


@CI
@given(trees, st.data())
def test_a_missing_or_extra_entry_names_its_path(tree, data):
  state = jax.tree.map(lambda x: x, serialization.to_state_dict(tree))  # fresh dicts
  paths = sorted(traverse_util.flatten_dict(state, keep_empty_nodes=True))
  assume(paths)
  path = data.draw(st.sampled_from(paths))
  parent = node_at(state, path[:-1])
  if data.draw(st.booleans()):
    del parent[path[-1]]
  else:
    path = (*path[:-1], "extra")
    parent["extra"] = np.zeros(())
    if isinstance(node_at(tree, path[:-1]), dict):  # as in Flax, a dict drops extra keys
      assert_equal_trees(serialization.from_state_dict(tree, state), tree, same_type=False)
      return
  # a sequence reports its length at its own path; dicts and structs name the key
  expected = path[:-1] if isinstance(node_at(tree, path[:-1]), list | tuple) else path
  with pytest.raises(errors.StateMismatchError) as info:
    serialization.from_state_dict(tree, state)
  assert info.value.path == "/".join(expected)


@pytest.mark.slow
@SLOW
@given(trees, jit_trees)
def test_bytes_and_jit_long(tree, small):
  restored = serialization.from_bytes(zeros_like(tree), serialization.to_bytes(tree))
  assert_equal_trees(restored, tree, same_type=False)
  expected = jax.tree.map(lambda x: jnp.asarray(np.asarray(x) * 2 + 1), small)
  assert_equal_trees(affine(small), expected)
