"""Checks that turn a shape mismatch between inputs and stored params into a clear error.

Without them, feeding 4 features into a layer whose kernel was built for 3 fails deep
in the contraction or as a generic param shape error; here it names the layer and both
feature sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from flaxen.core.meta import unbox
from flaxen.errors.layers import FeatureSizeError

__all__ = ["check_in_features", "layer_name"]


def layer_name(module: Any) -> str:
  """``"Dense at '/encoder/Dense_0'"``, for error messages."""
  if not module.path:
    return f"{type(module).__name__} (root module)"
  return f"{type(module).__name__} at '/{'/'.join(module.path)}'"


def check_in_features(module: Any, name: str, shape: Sequence[int], in_dims: Sequence[int],
                      input_shape: Sequence[int]) -> None:
  """Raises :class:`FeatureSizeError` when the stored param ``name`` differs from ``shape``
  on the input-feature dims ``in_dims`` (the sizes that come from the input)."""
  if not module.has_variable("params", name):
    return
  stored = np.shape(unbox(module.get_variable("params", name)))
  if len(stored) != len(shape):
    return  # a different configuration: the core's param shape check explains it
  expected = int(np.prod([stored[d] for d in in_dims]))
  found = int(np.prod([shape[d] for d in in_dims]))
  if expected != found:
    raise FeatureSizeError(layer_name(module), name, expected, found, input_shape)
