"""Training utilities of NNX (``flaxen.nnx.training``): ``metrics`` and ``optimizer``."""

from flaxen.nnx.training import metrics, optimizer

__all__ = ["metrics", "optimizer"]
