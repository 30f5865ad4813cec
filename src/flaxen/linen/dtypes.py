"""``nn.dtypes``: the dtype promotion rules of layers (see :mod:`flaxen.ops.dtypes`).

>>> import jax.numpy as jnp
>>> from flaxen.linen.dtypes import canonicalize_dtype
>>> canonicalize_dtype(jnp.ones(1, jnp.bfloat16), jnp.ones(1))
dtype('float32')
"""

from flaxen.ops.dtypes import canonicalize_dtype, promote_dtype

__all__ = ["canonicalize_dtype", "promote_dtype"]
