"""The functional core: frozen dicts, boxed metadata and the scoped variable store.

>>> from flaxen import core
>>> core.freeze({"a": {"b": 1}})["a"]
FrozenDict({
    b: 1,
})
"""

from flaxen.core import meta
from flaxen.core.broadcast import broadcast
from flaxen.core.filters import CollectionFilter, DenyList, in_filter, union_filters
from flaxen.core.frozen_dict import FrozenDict, copy, freeze, pop, pretty_repr, unfreeze
from flaxen.core.lazy import lazy_init
from flaxen.core.lift import (
  checkpoint,
  cond,
  custom_vjp,
  jit,
  jvp,
  remat,
  remat_scan,
  scan,
  switch,
  vjp,
  vmap,
  while_loop,
)
from flaxen.core.meta import AxisMetadata, map_axis_meta, unbox
from flaxen.core.scope import Scope, Variable, apply, bind, init
from flaxen.core.tracers import check_trace_level, current_trace
from flaxen.typing import Array

__all__ = [
  "meta", "AxisMetadata", "FrozenDict", "freeze", "unfreeze", "copy", "pop", "pretty_repr",
  "CollectionFilter", "DenyList", "in_filter", "union_filters", "Scope", "Variable", "bind",
  "init", "apply", "lazy_init", "broadcast", "map_axis_meta", "unbox", "check_trace_level",
  "current_trace", "Array", "lift", "vmap", "scan", "jit", "checkpoint", "remat", "remat_scan",
  "vjp", "jvp", "custom_vjp", "cond", "switch", "while_loop",
]
