"""``nnx.initializers``: the same module as ``flaxen.initializers`` (shared with Linen)."""

from flaxen.initializers import *  # noqa: F403
from flaxen.initializers import __all__  # noqa: F401
