"""flaxen.struct: frozen pytree dataclasses, static fields, errors, JAX transforms."""

import copy
import dataclasses
import inspect
import pickle
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import errors, struct

T = TypeVar("T")


@struct.dataclass
class Point:
  x: Any
  y: Any
  label: str = struct.field(pytree_node=False, default="p")


class Node(struct.PyTreeNode):
  value: Any
  children: tuple = ()
  name: str = struct.field(pytree_node=False, default="node")


# ------------------------------------------------------------------------- basics


def test_fields_are_leaves_and_static_fields_are_structure():
  p = Point(1.0, 2.0, label="a")
  leaves, treedef = jax.tree.flatten(p)
  assert leaves == [1.0, 2.0]
  assert jax.tree.unflatten(treedef, [3.0, 4.0]) == Point(3.0, 4.0, label="a")
  assert jax.tree.structure(Point(1.0, 2.0, "a")) != jax.tree.structure(Point(1.0, 2.0, "b"))


def test_key_paths_name_fields():
  paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(Point(1, 2))[0]]
  assert paths == [".x", ".y"]
  nested = Node(Node(1), children=(Node(2),))
  keys = [k for k, _ in jax.tree_util.tree_flatten_with_path(nested)[0]]
  assert [[getattr(e, "name", getattr(e, "idx", None)) for e in k] for k in keys] == [
    ["value", "value"], ["children", 0, "value"]
  ]


def test_replace_returns_updated_copy():
  p = Point(1, 2)
  q = p.replace(y=5, label="q")
  assert (p.x, p.y, p.label) == (1, 2, "p")
  assert (q.x, q.y, q.label) == (1, 5, "q")


def test_struct_mark_and_idempotent_decoration():
  assert Point._flax_dataclass is True
  assert struct.dataclass(Point) is Point
  assert dataclasses.is_dataclass(Node)


def test_decorator_with_keyword_arguments():
  @struct.dataclass(kw_only=True)
  class K:
    a: int = 1
    b: int

  assert K(b=2) == K(a=1, b=2)
  with pytest.raises(TypeError):
    K(1, 2)


def test_pytreenode_class_keywords():
  class K(struct.PyTreeNode, kw_only=True):
    a: int = 1
    b: int

  assert jax.tree.leaves(K(b=3)) == [1, 3]
  with pytest.raises(TypeError):
    K(1, 2)


def test_order_and_eq_pass_through():
  @struct.dataclass(order=True)
  class Ordered:
    a: int

  assert Ordered(1) < Ordered(2)

  @struct.dataclass(eq=False)
  class NoEq:
    a: int

  assert NoEq(1) != NoEq(1)


@struct.dataclass(slots=True)
class Slotted:
  x: Any
  tag: str = struct.field(pytree_node=False, default="s")


def test_slots_with_the_decorator():
  a = Slotted(1, tag="t")
  assert not hasattr(a, "__dict__") and a.tag == "t"
  assert jax.tree.unflatten(jax.tree.structure(a), [2]) == Slotted(2, tag="t")
  assert jax.jit(lambda s: s.replace(x=s.x + 1))(a) == Slotted(2, tag="t")
  with pytest.raises(errors.UnhashableStaticFieldError, match="Slotted.tag"):
    hash(Slotted(1, tag=["t"]))
  with pytest.raises(errors.FrozenStructError):
    a.tag = "u"
  assert pickle.loads(pickle.dumps(a)) == a
  assert copy.deepcopy(a) == a


def test_slots_on_pytreenode_is_an_error():
  with pytest.raises(errors.StructSlotsError, match=r"Bad\(PyTreeNode, slots=True\)"):

    class Bad(struct.PyTreeNode, slots=True):
      x: int


def test_frozen_false_makes_a_mutable_struct():
  @struct.dataclass(frozen=False)
  class M:
    a: int

  m = M(1)
  m.a = 2
  assert jax.tree.leaves(m) == [2]


# -------------------------------------------------------------------- immutability


def test_assignment_names_class_and_field():
  p = Point(1, 2)
  with pytest.raises(errors.FrozenStructError, match=r"'x' of Point") as info:
    p.x = 3
  assert isinstance(info.value, dataclasses.FrozenInstanceError)
  assert "replace(x=" in str(info.value)
  with pytest.raises(errors.FrozenStructError, match="delete field 'y' of Point"):
    del p.y
  assert p.x == 1


def test_replace_with_unknown_field_names_class_and_fields():
  with pytest.raises(errors.UnknownFieldError, match=r"Point\.replace\(\) got unknown") as info:
    Point(1, 2).replace(z=3)
  assert "'z'" in str(info.value) and "'label', 'x', 'y'" in str(info.value)
  assert isinstance(info.value, TypeError)


def test_replace_passes_other_errors_through():
  @struct.dataclass
  class Checked:
    n: int

    def __post_init__(self):
      if self.n < 0:
        raise TypeError("n must be >= 0")

  with pytest.raises(TypeError, match="n must be >= 0") as info:
    Checked(1).replace(n=-1)
  assert not isinstance(info.value, errors.UnknownFieldError)


def test_copy_and_pickle_keep_value():
  p = Point(np.arange(3), 2.0, label="c")
  for q in (copy.copy(p), copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
    assert isinstance(q, Point) and q.label == "c" and q.y == 2.0
    np.testing.assert_array_equal(q.x, p.x)


# ------------------------------------------------------------------- static fields


def test_unhashable_static_value_is_accepted_and_named_when_hashed():
  p = Point(1, 2, label=["a"])  # Flax accepts it
  assert p.label == ["a"] and isinstance(p.label, list) and jax.tree.leaves(p) == [1, 2]
  with pytest.raises(errors.UnhashableStaticFieldError, match=r"Point\.label .* list") as info:
    hash(p)
  assert isinstance(info.value, TypeError)
  assert "tuple" in str(info.value)  # the fix
  with pytest.raises(ValueError, match=r"Point\.label"):  # jit wraps the error, keeps its text
    jax.jit(lambda s: 0, static_argnums=0)(p)


@pytest.mark.parametrize("value", [{"a": 1}, [1], {1}])
def test_static_container_mutation_warns_and_would_be_stale(value):
  p = Point(jnp.ones(()), 2.0, label=value)
  f = jax.jit(lambda s: s.x * len(s.label))
  assert f(p) == len(value)
  with pytest.warns(errors.StaticFieldMutationWarning, match=r"Point\.label"):
    p.label.clear()
  assert p.label == type(value)()
  assert f(p) == len(value)  # the stale compilation the warning is about


def test_static_containers_copy_and_pickle_as_plain_values():
  p = Point(1, 2, label={"a": [1]})
  for c in (copy.copy(p.label), copy.deepcopy(p.label), p.label.copy(), dict(p.label)):
    assert type(c) is dict and c == {"a": [1]}
    c["b"] = 2  # a copy is the user's own, no warning
  q = pickle.loads(pickle.dumps(p))
  assert q == p
  with pytest.warns(errors.StaticFieldMutationWarning, match=r"Point\.label"):
    q.label["b"] = 2


@pytest.mark.parametrize("array", [np.ones(2), jnp.ones(2), np.array(1.0), jnp.array(1.0)])
def test_array_in_static_field_is_named_when_hashed(array):
  p = Point(1, 2, label=array)
  assert p.label is array
  with pytest.raises(errors.StaticArrayFieldError, match=r"Point\.label holds an array") as info:
    hash(p)
  assert isinstance(info.value, errors.UnhashableStaticFieldError)


def test_unhashable_static_value_in_replace_and_unflatten():
  p = Point(1, 2)
  assert p.replace(label={"a": 1}).label == {"a": 1}
  treedef = jax.tree.structure(p.replace(label={"a": 1}))
  assert jax.tree.unflatten(treedef, [5, 6]) == Point(5, 6, label={"a": 1})


def test_jax_metadata_static_is_static():
  @struct.dataclass
  class M:
    a: Any
    op: str = dataclasses.field(default="add", metadata=dict(static=True))

  assert jax.tree.leaves(M(1)) == [1]
  with pytest.raises(errors.UnhashableStaticFieldError, match="M.op"):
    hash(M(1, op=[1]))


def test_hashable_static_values_accepted():
  Point(1, 2, label=("a", 1))
  Point(1, 2, label=frozenset({1}))
  Point(1, 2, label=np.float32(1.0))  # numpy scalars hash


# -------------------------------------------------------------------- inheritance


def test_subclass_adds_fields():
  class Child(Node):
    extra: int = 0
    mode: str = struct.field(pytree_node=False, default="m")

  c = Child(1, extra=2, mode="x")
  assert jax.tree.leaves(c) == [1, 2]
  assert jax.tree.unflatten(jax.tree.structure(c), [3, 4]) == Child(3, extra=4, mode="x")
  assert c.replace(extra=5).extra == 5
  with pytest.raises(errors.UnhashableStaticFieldError, match="Child.mode"):
    hash(Child(1, mode=[]))
  with pytest.raises(errors.FrozenStructError, match="Child"):
    c.extra = 1


def test_subclass_redeclaring_a_static_field_follows_dataclass_rules():
  class Base(struct.PyTreeNode):
    x: Any
    mode: str = struct.field(pytree_node=False, default="a")
    size: int = struct.field(pytree_node=False, default_factory=lambda: 3)

  class Again(Base):
    mode: str  # annotated again, no value: keeps the inherited default, becomes data

  class Fresh(Base):
    size: int = struct.field(pytree_node=False, default=4)

  assert Again(1).mode == "a" and jax.tree.leaves(Again(1)) == [1, "a"]
  assert Fresh(1).size == 4 and jax.tree.leaves(Fresh(1)) == [1]
  with pytest.raises(errors.UnhashableStaticFieldError, match="Fresh.size"):
    hash(Fresh(1, size=[4]))
  assert Base(1).size == 3


def test_mutable_struct_checks_static_assignments():
  @struct.dataclass(frozen=False)
  class M:
    a: int
    tag: str = struct.field(pytree_node=False, default="t")

  m = M(1)
  m.tag = "u"
  assert jax.tree.structure(m) == jax.tree.structure(M(1, tag="u"))
  m.tag = ["u"]
  with pytest.warns(errors.StaticFieldMutationWarning, match="M.tag"):
    m.tag.append("v")


def test_decorated_subclass_of_decorated_class():
  @struct.dataclass
  class Point3(Point):
    z: Any = 0.0

  p = Point3(1.0, 2.0, z=3.0)
  assert jax.tree.leaves(p) == [1.0, 2.0, 3.0]
  assert p.label == "p"


def test_generic_pytreenode():
  class Box(struct.PyTreeNode, Generic[T]):
    item: T
    tag: str = struct.field(pytree_node=False, default="t")

  assert Box[int].__origin__ is Box
  b = Box[int](3)
  assert jax.tree.map(lambda v: v + 1, b) == Box(4)
  assert b.tag == "t"


# ---------------------------------------------------------- init=False, constructors


@struct.dataclass
class Normalized:
  raw: Any
  norm: Any = struct.field(init=False)

  def __post_init__(self):
    object.__setattr__(self, "norm", self.raw / jnp.linalg.norm(self.raw))


def test_init_false_fields_are_derived_not_leaves():
  n = Normalized(jnp.array([3.0, 4.0]))
  assert len(jax.tree.leaves(n)) == 1
  doubled = jax.tree.map(lambda v: v * 2, n)
  np.testing.assert_allclose(doubled.raw, [6.0, 8.0])
  np.testing.assert_allclose(doubled.norm, [0.6, 0.8])  # recomputed on unflatten
  with pytest.raises(errors.UnknownFieldError, match="init=False") as info:
    n.replace(norm=1.0)
  assert isinstance(info.value, ValueError)


def test_classmethod_smart_constructor():
  @struct.dataclass
  class Interval:
    lo: float
    hi: float

    @classmethod
    def around(cls, center, radius):
      return cls(center - radius, center + radius)

  assert Interval.around(1.0, 0.5) == Interval(0.5, 1.5)
  assert jax.tree.leaves(Interval.around(1.0, 0.5)) == [0.5, 1.5]


# ------------------------------------------------------------------ JAX transforms


def test_jit_grad_vmap_over_instances():
  p = Point(jnp.array(2.0), jnp.array(3.0), label="mul")

  @jax.jit
  def f(p):
    return p.x * p.y if p.label == "mul" else p.x + p.y

  assert f(p) == 6.0
  g = jax.grad(f)(p)
  assert isinstance(g, Point) and g.label == "mul"
  assert (g.x, g.y) == (3.0, 2.0)
  batch = Point(jnp.arange(3.0), jnp.ones(3), label="mul")
  out = jax.vmap(lambda p: p.replace(x=p.x * 2))(batch)
  np.testing.assert_array_equal(out.x, [0.0, 2.0, 4.0])
  assert out.label == "mul"


def test_static_field_is_part_of_jit_cache_key():
  traces = []

  @jax.jit
  def f(p):
    traces.append(p.label)
    return p.x + (1 if p.label == "a" else 2)

  assert f(Point(jnp.array(1), 0, label="a")) == 2
  assert f(Point(jnp.array(5), 0, label="a")) == 6
  assert traces == ["a"]  # same static value: cache hit
  assert f(Point(jnp.array(1), 0, label="b")) == 3
  assert traces == ["a", "b"]  # changed static value: retrace
  f(Point(jnp.array(7), 0, label="a"))
  assert traces == ["a", "b"]


def test_struct_returned_from_jit_keeps_static_fields():
  out = jax.jit(lambda p: p.replace(x=p.x + 1))(Point(jnp.array(1), jnp.array(2), label="z"))
  assert out.label == "z" and int(out.x) == 2


def test_typed_annotations_do_not_matter_to_registration():
  @struct.dataclass
  class Plain:
    a: jax.Array
    b: np.ndarray

  assert len(jax.tree.leaves(Plain(jnp.ones(1), np.ones(1)))) == 2


def test_static_containers_walk_as_pytrees():
  p = Point(1, 2, label={"b": [1, 2], "a": 3})
  assert jax.tree.leaves(p.label) == [3, 1, 2]
  doubled = jax.tree.map(lambda v: v * 2, p.label)
  assert doubled == {"a": 6, "b": [2, 4]} and type(doubled) is dict
  assert type(doubled["b"]) is list
  paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(p.label)[0]]
  assert paths == ["['a']", "['b'][0]", "['b'][1]"]


def test_pytreenode_base_init_takes_flax_signature_but_no_fields():
  assert list(inspect.signature(struct.PyTreeNode).parameters) == ["args", "kwargs"]

  class Counter(struct.PyTreeNode, init=False):  # no generated __init__: the base's runs
    n: int = 3

  assert Counter().n == 3 and jax.tree.leaves(Counter()) == [3]
  with pytest.raises(TypeError):  # no fields to take them: never silently dropped
    Counter(5)
