"""How a State flattens: as plain dicts, so that JAX's C++ registry walks its levels.

A State flattens (one Python call at its root) into its values in sorted key order, each
sub-State as a plain ``dict`` (JAX walks dicts in C++, in the same sorted order) and each
Variable as itself (a pytree node of its own, so ``is_leaf`` predicates still see
Variables). Key paths are what nested States gave:
``(DictKey('linear'), DictKey('kernel'), GetAttrKey('value'))``.

Unflattening builds only those dicts and Variables; the State it returns keeps them and
makes its nested States the first time it is read (``State._mapping``). A State handed
from one ``jax.jit`` to the next is therefore never rebuilt: flattening an unread State
returns what it was unflattened from. Levels whose keys do not sort naturally (mixed names
and indices) stay State nodes, so every level keeps the order ``State`` sorts by.

>>> import jax, jax.numpy as jnp
>>> from flaxen import nnx
>>> s = nnx.State({"a": {"w": nnx.Param(jnp.ones(2))}})
>>> [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(s)[0]]
["['a']['w'].value"]
>>> type(jax.tree.map(lambda x: 2 * x, s).a.w).__name__
'Param'
"""

from __future__ import annotations

from typing import Any

import jax

from flaxen.nnx.state import _NATURAL, State, _sorted_keys

__all__: list[str] = []


# ------------------------------------------------------------------------ State -> tree

_SORTABLE = frozenset(map(frozenset, _NATURAL))  # key types JAX sorts as State does


def _tree(m: dict) -> dict:
  """A State's mapping with its sub-States as plain dicts (the form JAX walks in C++).
  Exact type: State subclasses (GraphState) flatten through their own registration."""
  out = {}
  for k, v in m.items():
    if type(v) is State:
      d = v.__dict__
      sub = d.get("_mapping")
      if sub is None:  # unflattened, unread: its children as they came
        keys, children = d["_lazy"]
        if frozenset(map(type, keys)) in _SORTABLE:
          v = dict(zip(keys, children, strict=True))
      elif frozenset(map(type, sub)) in _SORTABLE:
        v = _tree(sub)
      # else v stays a State node: JAX would not sort its mixed keys as State does
    out[k] = v
  return out


def _flatten(state: State):
  d = state.__dict__
  lazy = d.get("_lazy")
  if lazy is not None:
    return lazy[1], lazy[0]
  m = d["_mapping"]
  keys = _sorted_keys(m)
  tree = _tree(m)
  return [tree[k] for k in keys], tuple(keys)


def _flatten_with_keys(state: State):
  children, keys = _flatten(state)
  return list(zip(map(jax.tree_util.DictKey, keys), children, strict=True)), keys


def _unflatten(keys: tuple, children: Any) -> State:
  state = object.__new__(State)
  state.__dict__["_lazy"] = (keys, children)
  return state


jax.tree_util.register_pytree_with_keys(State, _flatten_with_keys, _unflatten, _flatten)


# ------------------------------------------------------------------------ tree -> State

def _build(c: dict) -> State:
  return State._wrap({k: _build(v) if type(v) is dict else v for k, v in c.items()})


def materialize(state: State) -> dict:
  """Builds an unflattened State's nested States and Variables; returns its mapping."""
  d = state.__dict__
  keys, children = d["_lazy"]
  mapping = {k: _build(c) if type(c) is dict else c
             for k, c in zip(keys, children, strict=True)}
  d["_mapping"] = mapping
  del d["_lazy"]
  return mapping
