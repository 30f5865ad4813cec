"""flaxen.nnx: stateful graph modules, their functional API and stateful transforms.

>>> import jax, jax.numpy as jnp
>>> from flaxen import nnx
>>> model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
>>> @nnx.jit
... def step(model, x):
...   grads = nnx.grad(lambda m: (m(x) ** 2).mean())(model)
...   nnx.update(model, jax.tree.map(lambda p, g: p - 0.1 * g, nnx.state(model, nnx.Param),
...                                  grads))
>>> step(model, jnp.ones((1, 2)))
"""

from flaxen import initializers
from flaxen import traverse_util as traversals
from flaxen.core.spmd import get_logical_axis_rules, logical_axis_rules, set_logical_axis_rules
from flaxen.nnx import compat, extract, filterlib, metrics, state_serialization  # noqa: F401 (registers State)
from flaxen.nnx.abstract import (
  abstract_with_sharding,
  as_abstract,
  get_abstract_model,
  use_eager_sharding,
  using_eager_sharding,
)
from flaxen.nnx.capture import capture
from flaxen.nnx.containers import Dict, List
from flaxen.nnx.display import display
from flaxen.nnx.extract import NodeStates, from_tree, to_tree
from flaxen.nnx.filterlib import All, Any, Everything, Not, Nothing, OfType, PathContains, WithTag
from flaxen.nnx.graph import GraphDef
from flaxen.nnx.graph_mode import set_graph_mode, set_graph_updates
from flaxen.nnx.graph_utils import (
  GraphState,
  PureState,
  as_pure,
  find_duplicates,
  flatten,
  map,
  pure,
  recursive_map,
  set_metadata,
  unflatten,
  unpack,
  vars_as,
  with_vars,
)
from flaxen.nnx.graphlib import (
  call,
  clone,
  graphdef,
  iter_graph,
  merge,
  pop,
  split,
  state,
  update,
  variables,
)
from flaxen.nnx.metrics import Metric, MultiMetric
from flaxen.nnx.module import Module, iter_children, iter_module_children, iter_modules
from flaxen.nnx.nn import *  # noqa: F403
from flaxen.nnx.nn import __all__ as _layers
from flaxen.nnx.object import Object, Pytree, is_graph_node
from flaxen.nnx.pytree_annotations import (
  Data,
  Static,
  check_pytree,
  data,
  dataclass,
  has_data,
  is_data,
  register_data_type,
  static,
)
from flaxen.nnx.rnglib import (
  RngCount,
  RngKey,
  Rngs,
  RngState,
  RngStream,
  SplitBackups,
  backup_keys,
  fork_rngs,
  reseed,
  restore_rngs,
  split_rngs,
  with_rngs,
)
from flaxen.nnx.spmd import (
  get_named_sharding,
  get_partition_spec,
  with_partitioning,
  with_sharding_constraint,
)
from flaxen.nnx.state import (
  FlatState,
  State,
  filter_state,
  from_flat_state,
  map_state,
  merge_state,
  replace_by_pure_dict,
  restore_int_paths,
  split_state,
  to_flat_state,
  to_pure_dict,
)
from flaxen.nnx.summary import tabulate
from flaxen.nnx.training import optimizer
from flaxen.nnx.training.ema import EMA
from flaxen.nnx.training.optimizer import (
  ModelAndOptimizer,
  OptArray,
  Optimizer,
  OptState,
  OptVariable,
)
from flaxen.nnx.training.train_state import TrainState
from flaxen.nnx.transforms.autodiff import DiffState, grad, jvp, value_and_grad, vjp
from flaxen.nnx.transforms.axes import PARTITION_NAME, Carry, StateAxes
from flaxen.nnx.transforms.checkify import checkify
from flaxen.nnx.transforms.control_flow import cond, fori_loop, switch, while_loop
from flaxen.nnx.transforms.custom_vjp import CustomVjp, custom_vjp
from flaxen.nnx.transforms.eval_shape import eval_shape
from flaxen.nnx.transforms.jit import jit
from flaxen.nnx.transforms.jit_partial import cached_partial, jit_partial
from flaxen.nnx.transforms.make_jaxpr import make_jaxpr
from flaxen.nnx.transforms.pmap import pmap
from flaxen.nnx.transforms.prefix import prefix
from flaxen.nnx.transforms.remat import remat
from flaxen.nnx.transforms.scan import scan
from flaxen.nnx.transforms.shard_map import shard_map
from flaxen.nnx.transforms.state_sharding import StateSharding
from flaxen.nnx.transforms.vmap import vmap
from flaxen.nnx.update_context import (
  MergeContext,
  SplitContext,
  UpdateContext,
  current_update_context,
  merge_context,
  split_context,
  update_context,
)
from flaxen.nnx.variable_defaults import transform_metadata, var_defaults
from flaxen.nnx.variable_names import (
  register_variable_name,
  variable_name_from_type,
  variable_type_from_name,
)
from flaxen.nnx.variables import (
  A,
  BatchStat,
  Cache,
  Intermediate,
  Param,
  Perturbation,
  Variable,
  VariableMetadata,
  VariableState,
  with_metadata,
)
from flaxen.nnx.views import view, view_info, with_attributes

__all__ = [
  "All", "Any", "BatchStat", "Cache", "DiffState", "Dict", "Everything", "FlatState",
  "GraphDef", "Intermediate", "List", "ModelAndOptimizer", "Module", "Not", "Nothing",
  "Object", "OfType",
  "OptArray", "OptState", "OptVariable", "Optimizer", "Param", "PathContains", "Perturbation",
  "Pytree", "RngCount", "RngKey", "RngState", "RngStream", "Rngs", "State", "Variable",
  "VariableState", "WithTag", "clone", "eval_shape", "filterlib", "grad", "graphdef",
  "initializers", "is_graph_node", "iter_children", "iter_graph", "iter_modules", "jit",
  "merge", "pop", "reseed", "split", "state", "update", "value_and_grad", "variables",
  "filter_state", "from_flat_state", "map_state", "merge_state", "replace_by_pure_dict",
  "restore_int_paths", "split_state", "to_flat_state", "to_pure_dict", "call", "cached_partial",
  "vjp", "jvp",
  "Carry", "SplitBackups", "StateAxes", "restore_rngs", "scan", "split_rngs", "vmap",
  "PARTITION_NAME", "cond", "fori_loop", "remat", "switch", "while_loop",
]
__all__ += [*_layers, "metrics", "Metric", "MultiMetric", "tabulate", "display", "CustomVjp",
            "custom_vjp"]
__all__ += ["get_named_sharding", "get_partition_spec", "with_partitioning",
            "with_sharding_constraint", "VariableMetadata", "with_metadata",
            "logical_axis_rules", "get_logical_axis_rules", "set_logical_axis_rules"]
__all__ += ["set_graph_mode", "set_graph_updates", "compat", "iter_module_children"]
__all__ += ["backup_keys", "fork_rngs", "with_rngs"]
__all__ += ["Data", "Static", "check_pytree", "data", "dataclass", "has_data", "is_data",
            "register_data_type", "static"]
__all__ += ["GraphState", "PureState", "find_duplicates", "map", "recursive_map",
            "set_metadata", "unpack", "view", "view_info", "with_attributes"]
__all__ += ["abstract_with_sharding", "as_abstract", "get_abstract_model",
            "use_eager_sharding", "using_eager_sharding"]
__all__ += ["transform_metadata", "var_defaults"]
__all__ += ["capture"]
__all__ += ["NodeStates", "from_tree", "to_tree", "as_pure", "flatten", "pure", "unflatten",
            "vars_as", "with_vars", "extract", "traversals"]
__all__ += ["MergeContext", "SplitContext", "UpdateContext", "current_update_context",
            "merge_context", "split_context", "update_context"]
__all__ += ["jit_partial", "StateSharding", "checkify", "make_jaxpr"]
__all__ += ["pmap", "shard_map", "prefix", "A"]

__all__ += ["EMA", "TrainState", "optimizer"]
__all__ += ["register_variable_name", "variable_name_from_type", "variable_type_from_name"]


def __getattr__(name: str):
  # `nnx.bridge` (and `nnx.wrappers`, its wrappers) import flaxen.linen: loaded on first use.
  if name in ("bridge", "wrappers"):
    import importlib
    return importlib.import_module("flaxen.nnx.bridge" + (".wrappers" * (name == "wrappers")))
  raise AttributeError(f"module 'flaxen.nnx' has no attribute {name!r}")
