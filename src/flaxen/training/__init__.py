"""Training utilities for Linen models (``flaxen.training.train_state``)."""
