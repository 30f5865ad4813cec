"""Flax's helpers for calling Orbax directly: per-leaf save and restore arguments.

Flax's checkpointing guide builds Orbax arguments with these
(``ocp.PyTreeCheckpointer().save(path, tree, save_args=save_args_from_target(tree))``), so
they are here at Flax's path. Restore arguments take each array's sharding and dtype from
the target, so arrays come back where (and as what) the target holds them.

>>> import tempfile, jax.numpy as jnp, orbax.checkpoint as ocp
>>> from flaxen.training import orbax_utils
>>> tree = {"w": jnp.arange(3.0)}
>>> path = tempfile.mkdtemp() + "/ckpt"
>>> with ocp.PyTreeCheckpointer() as ckptr:
...   ckptr.save(path, tree, save_args=orbax_utils.save_args_from_target(tree))
...   restored = ckptr.restore(path, item=tree,
...                            restore_args=orbax_utils.restore_args_from_target(tree))
>>> restored["w"]
Array([0., 1., 2.], dtype=float32)
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = [
  "is_multi_device_array", "save_args_from_target", "maybe_construct_transformations",
  "restore_args_from_target",
]


def is_multi_device_array(value: Any) -> bool:
  """Whether ``value`` is a jax array split (not replicated) over several devices."""
  return isinstance(value, jax.Array) and not value.is_fully_replicated


def save_args_from_target(target: Any) -> Any:
  """Default ``ocp.SaveArgs`` for every leaf of ``target``."""
  return jax.tree_util.tree_map(lambda _: ocp.SaveArgs(), target)


def maybe_construct_transformations(target: Any, transforms: Any | None) -> Any:
  """``transforms`` if given; else Orbax transforms letting each None leaf of ``target``
  take the stored value (by '/'-joined path)."""
  if transforms is not None:
    return transforms
  flat = ocp.utils.to_flat_dict(target, sep="/", keep_empty_nodes=True)
  return {path: ocp.Transform(use_fallback=True) for path, v in flat.items() if v is None}


def restore_args_from_target(target: Any, mesh: Any | None = None) -> Any:
  """Orbax restore arguments restoring each leaf as ``target``'s leaf is.

  Args:
    target: a tree of the saved structure. Its jax arrays (or ShapeDtypeStructs) give
      each restored array's sharding and dtype; without any, leaves restore as numpy.
    mesh: deprecated, as in Flax: build the target's arrays on the mesh instead.

  Returns:
    A tree of ``ocp.RestoreArgs`` / ``ocp.ArrayRestoreArgs`` shaped like ``target``.
  """
  if mesh is not None:
    warnings.warn("restore_args_from_target's `mesh` is deprecated, as in Flax: create the "
                  "target's arrays with their sharding instead.", DeprecationWarning,
                  stacklevel=2)
  shardings = [getattr(x, "sharding", None) for x in jax.tree_util.tree_leaves(target)]
  if not any(shardings):
    return jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
  return ocp.checkpoint_utils.construct_restore_args(target)
