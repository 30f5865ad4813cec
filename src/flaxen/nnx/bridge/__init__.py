"""flaxen.nnx.bridge: Linen modules inside NNX models and NNX modules inside Linen models.

``ToNNX`` wraps a Linen module as a stateful NNX module; ``ToLinen`` / ``to_linen`` wrap an
NNX module class as a Linen module. Variables cross over by collection name <-> Variable
type (``'params'`` <-> ``nnx.Param``, ``'batch_stats'`` <-> ``nnx.BatchStat``...).

>>> import jax.numpy as jnp
>>> import flaxen.linen as nn
>>> from flaxen import nnx
>>> from flaxen.nnx import bridge
>>> model = bridge.ToNNX(nn.BatchNorm(use_running_average=False), rngs=nnx.Rngs(0))
>>> y = model.lazy_init(jnp.ones((4, 3)))(jnp.arange(12.0).reshape(4, 3))
>>> type(model.mean).__name__, bool((model.mean.value > 0).all())
('BatchStat', True)
"""

from flaxen.nnx.bridge import wrappers
from flaxen.nnx.bridge.functional import Functional, functional
from flaxen.nnx.bridge.interop import linen_in_bridge_mdl, nnx_in_bridge_mdl
from flaxen.nnx.bridge.module import (
  AttrPriority,
  Module,
  Scope,
  compact,
  current_context,
  current_module,
)
from flaxen.nnx.bridge.to_linen import ToLinen, to_linen
from flaxen.nnx.bridge.to_nnx import ToNNX, lazy_init, linen_rngs
from flaxen.nnx.bridge.variables import (
  NNXMeta,
  register_variable_name,
  register_variable_name_type_pair,
  to_linen_var,
  to_nnx_var,
  variable_name_from_type,
  variable_type_from_name,
  with_partitioning,
)
from flaxen.nnx.nn import initializers

__all__ = [
  "ToNNX", "ToLinen", "to_linen", "lazy_init", "linen_rngs", "register_variable_name",
  "register_variable_name_type_pair", "variable_name_from_type", "variable_type_from_name",
  "to_linen_var", "to_nnx_var", "NNXMeta", "with_partitioning", "Functional", "functional",
  "Module", "Scope", "AttrPriority", "compact", "current_context", "current_module",
  "linen_in_bridge_mdl", "nnx_in_bridge_mdl", "initializers", "wrappers",
]
