"""``nn.add_metadata_axis``: give boxed variables an extra leading axis name outside a call.

Inside the wrapped method the boxes (``nn.Partitioned``, ...) of each listed collection look
as the method made them; outside they carry one more axis in their metadata (e.g. the
partition name of a stack axis that a surrounding ``vmap`` / ``scan`` adds by hand). Only
the metadata changes: the arrays keep their shape.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> class Layer(nn.Module):
...   @nn.compact
...   def __call__(self, x):
...     init = nn.with_partitioning(nn.initializers.ones, ("in", "out"))
...     return x @ self.param("w", init, (2, 3))
>>> Stacked = nn.add_metadata_axis(Layer, variable_axes={"params": 0},
...                                metadata_params={nn.PARTITION_NAME: "layers"})
>>> Stacked().init(jax.random.key(0), jnp.ones(2))["params"]["w"].names
('layers', 'in', 'out')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flaxen.core import meta
from flaxen.core.filters import CollectionFilter
from flaxen.linen.transforms.map_variables import map_variables

__all__ = ["add_metadata_axis"]


def add_metadata_axis(target: Any,
                      variable_axes: Mapping[CollectionFilter, int] = {},  # noqa: B006
                      metadata_params: Mapping[str, Any] = {}) -> Any:  # noqa: B006
  """Add axis ``variable_axes[collection]`` to the metadata of that collection's boxes.

  Args:
    target: a Module class, or a function taking a bound Module first.
    variable_axes: ``{collection: axis}``; the axis index inserted in the boxes' metadata.
    metadata_params: passed to the boxes' ``add_axis`` / ``remove_axis`` (e.g.
      ``{nn.PARTITION_NAME: "layers"}``).

  Returns:
    The wrapped Module subclass or function.
  """
  params = dict(metadata_params)

  def mapper(fn: Callable[..., Any], axis: int) -> Callable[[Any], Any]:
    return lambda tree: fn(tree, axis, params)

  for collection, axis in variable_axes.items():
    target = map_variables(target, collection, trans_in_fn=mapper(meta.remove_axis, axis),
                           trans_out_fn=mapper(meta.add_axis, axis), mutable=True)
  return target
