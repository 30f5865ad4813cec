"""``flaxen.nnx.bridge.wrappers`` (also ``nnx.wrappers``): the Linen <-> NNX wrappers under
Flax's module path."""

from flaxen.nnx.bridge.functional import Functional, functional
from flaxen.nnx.bridge.to_linen import ToLinen, to_linen
from flaxen.nnx.bridge.to_nnx import ToNNX, lazy_init

__all__ = ["Functional", "ToLinen", "ToNNX", "functional", "lazy_init", "to_linen"]
