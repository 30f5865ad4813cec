"""Struct dataclasses flatten and unflatten as fast as a class registered with JAX directly.

The reference is the same frozen dataclass registered with
``jax.tree_util.register_dataclass``. Both go through JAX's C++ registry, so the ratio
shows what flaxen adds: nothing for data fields; for a class with static fields, the
hashability check that runs in ``__init__`` (which unflatten calls).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks.timing import Result, compare
from flaxen import struct

N_FIELDS = 20
N_INSTANCES = 1000
TARGET = 1.1


def make_classes(static: bool) -> tuple[type, type]:
  """A flaxen PyTreeNode and the equivalent register_dataclass class, 20 array fields each."""
  annotations: dict[str, Any] = {f"a{i}": jax.Array for i in range(N_FIELDS)}
  flaxen_ns: dict[str, Any] = {"__annotations__": dict(annotations)}
  jax_ns: dict[str, Any] = {"__annotations__": dict(annotations)}
  if static:
    flaxen_ns["__annotations__"]["mode"] = jax_ns["__annotations__"]["mode"] = str
    flaxen_ns["mode"] = struct.field(pytree_node=False, default="train")
    jax_ns["mode"] = dataclasses.field(default="train", metadata=dict(static=True))
  flaxen_cls = type("FlaxenStruct", (struct.PyTreeNode,), flaxen_ns)
  jax_cls = jax.tree_util.register_dataclass(
    dataclasses.dataclass(frozen=True)(type("JaxDataclass", (), jax_ns))
  )
  return flaxen_cls, jax_cls


def round_trip(tree: Any) -> Any:
  leaves, treedef = jax.tree.flatten(tree)
  return jax.tree.unflatten(treedef, leaves)


def run() -> list[Result]:
  x = jnp.ones(4)
  results = []
  for static in (False, True):
    flaxen_cls, jax_cls = make_classes(static)
    suffix = " + 1 static field" if static else ""
    for count in (1, N_INSTANCES):
      ours = [flaxen_cls(*[x] * N_FIELDS) for _ in range(count)]
      ref = [jax_cls(*[x] * N_FIELDS) for _ in range(count)]
      if count == 1:
        ours, ref = ours[0], ref[0]
      results.append(compare(
        f"flatten+unflatten, {'1 instance' if count == 1 else f'list of {count}'}, "
        f"{N_FIELDS} arrays{suffix}",
        lambda t=ours: round_trip(t),
        lambda t=ref: round_trip(t),
        target=TARGET,
        unit="per tree",
        notes="vs the same class via jax.tree_util.register_dataclass",
      ))
  return results
