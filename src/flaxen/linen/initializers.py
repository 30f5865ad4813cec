"""``nn.initializers``: the initializers shared with NNX (see :mod:`flaxen.initializers`).

>>> import jax
>>> from flaxen.linen import initializers
>>> initializers.lecun_normal()(jax.random.key(0), (2, 2)).shape
(2, 2)
"""

from flaxen.initializers import *  # noqa: F403
from flaxen.initializers import __all__  # noqa: F401
