"""NNX layers (``flaxen.nnx.nn``); each family lives in its own module."""
