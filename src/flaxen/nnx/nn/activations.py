"""Activation functions under Flax's names (``nnx.relu``, ``nnx.gelu``...): the shared
:mod:`flaxen.ops.activations`."""

from flaxen.ops.activations import *  # noqa: F403
from flaxen.ops.activations import __all__  # noqa: F401
