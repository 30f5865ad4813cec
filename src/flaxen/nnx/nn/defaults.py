"""Defaults shared by the NNX layers: initializers, empty metadata, the promotion rule.

Layers use their initializers in ``__init__`` and do not keep them as attributes, so two
layers built alike with different initializers have the same GraphDef (as in Flax).

>>> NO_METADATA
mappingproxy({})
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from flaxen import initializers
from flaxen.nnx.nn.dtypes import promote_dtype
from flaxen.ops.dtypes import PromoteFn

__all__ = [
  "NO_METADATA", "default_bias_init", "default_embed_init", "default_kernel_init", "rule_of",
]

default_kernel_init = initializers.lecun_normal()
default_bias_init = initializers.zeros_init()
default_embed_init = initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)
NO_METADATA: Mapping[str, Any] = MappingProxyType({})


def rule_of(fn: PromoteFn) -> PromoteFn | None:
  """A layer's ``promote_dtype`` as the ops take it: ``None`` for the default rule (which
  the ops run on their fast path), else ``fn`` itself (NNX's convention is the ops')."""
  return None if fn is promote_dtype else fn
