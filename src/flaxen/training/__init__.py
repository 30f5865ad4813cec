"""Training utilities, at Flax's paths: ``train_state``, ``checkpoints``, ``common_utils``,
``early_stopping``, ``lr_schedule``, ``dynamic_scale``, ``prefetch_iterator`` and
``orbax_utils``.

Each submodule loads on first use (``from flaxen.training import checkpoints`` or
``flaxen.training.checkpoints``).
"""

import importlib

_SUBMODULES = (
  "checkpoints", "common_utils", "dynamic_scale", "early_stopping", "lr_schedule",
  "orbax_utils", "prefetch_iterator", "train_state",
)


def __getattr__(name: str):
  if name in _SUBMODULES:
    return importlib.import_module(f"flaxen.training.{name}")
  raise AttributeError(f"module 'flaxen.training' has no attribute {name!r}")


__all__ = list(_SUBMODULES)
