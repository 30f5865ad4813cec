"""Abstract models: shapes, dtypes and shardings without arrays, and eager sharding.

``nnx.as_abstract(nnx.eval_shape(make_model))`` gives each Variable a
``jax.ShapeDtypeStruct`` with the ``NamedSharding`` its metadata asks for (its own
``mesh``, else the mesh of ``jax.set_mesh``); ``get_abstract_model`` does both under a mesh
and splits the result, what a sharded checkpoint restore needs as its target.
``use_eager_sharding`` switches off (or on) laying new annotated Variables out at creation
(the ``flax_always_shard_variable`` flag).

>>> import jax
>>> from flaxen import nnx
>>> abstract = nnx.as_abstract(nnx.eval_shape(lambda: nnx.Linear(2, 3, rngs=nnx.Rngs(0))))
>>> abstract.kernel.value
ShapeDtypeStruct(shape=(2, 3), dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import NamedSharding

from flaxen.config_context import BaseConfigContext
from flaxen.configurations import config
from flaxen.core import spmd as core_spmd
from flaxen.nnx.graphlib import clone, split, variables
from flaxen.nnx.spmd import sharding_names, variable_spec

__all__ = ["as_abstract", "abstract_with_sharding", "get_abstract_model", "use_eager_sharding",
           "using_eager_sharding"]


class use_eager_sharding(BaseConfigContext):  # noqa: N801 (Flax's name)
  """Whether a new Variable with sharding metadata is laid out at creation under a mesh:
  a call, a ``with`` block or a decorator (default: ``flax_always_shard_variable``)."""

  @classmethod
  def get_default(cls) -> bool:
    return config.flax_always_shard_variable


def using_eager_sharding() -> bool:
  """The current ``use_eager_sharding`` value."""
  return use_eager_sharding.current_value()


def _abstract(value: Any, meta: dict, mesh: Any = None) -> Any:
  if not hasattr(value, "shape") or not hasattr(value, "dtype"):
    return value
  mesh = meta.get("mesh") or mesh or core_spmd.active_mesh()
  sharding = None
  if mesh is not None and sharding_names(meta) is not None:
    sharding = NamedSharding(mesh, variable_spec(value, meta))
  elif isinstance(getattr(value, "sharding", None), NamedSharding):
    sharding = value.sharding
  return jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=sharding)


def as_abstract(tree: Any, graph: bool | None = None) -> Any:
  """A copy of ``tree`` whose Variables hold ``jax.ShapeDtypeStruct``s with the shardings
  their metadata describes (none without a mesh or sharding names)."""
  return _as_abstract(tree, graph, None)


def _as_abstract(tree: Any, graph: bool | None, mesh: Any) -> Any:
  out = clone(tree, graph=graph)
  for _, var in variables(out).flat_state():
    meta = var.get_metadata()
    var.raw_value = jax.tree.map(lambda x, meta=meta: _abstract(x, meta, mesh), var.raw_value)
  return out


def abstract_with_sharding(tree: Any, graph: bool | None = None) -> Any:
  """Deprecated name of :func:`as_abstract`."""
  return as_abstract(tree, graph=graph)


def get_abstract_model(init_fn: Callable[[], Any], mesh: Any, *,
                       graph: bool | None = None) -> tuple[Any, Any]:
  """``(graphdef, abstract_state)`` of the model ``init_fn`` builds, under ``mesh``, with
  no arrays allocated: the state's leaves are ``ShapeDtypeStruct``s with shardings."""
  from flaxen.nnx.transforms.eval_shape import eval_shape

  with jax.set_mesh(mesh):
    model = _as_abstract(eval_shape(init_fn), graph, mesh)  # the concrete mesh
  return split(model, graph=graph)
