"""Pooling functions of Linen (``nn.max_pool``, ``nn.avg_pool``, ...): see
:mod:`flaxen.ops.pooling`.

>>> import jax.numpy as jnp
>>> import flaxen.linen as nn
>>> nn.avg_pool(jnp.ones((1, 4, 4, 2)), (2, 2), strides=(2, 2)).shape
(1, 2, 2, 2)
"""

from flaxen.ops.pooling import avg_pool, max_pool, min_pool, pool

__all__ = ["avg_pool", "max_pool", "min_pool", "pool"]
