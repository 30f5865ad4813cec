"""Training utilities of NNX (``flaxen.nnx.training``)."""
