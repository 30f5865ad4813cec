"""flaxen: neural networks for JAX.

``flaxen.struct`` (pytree dataclasses), ``flaxen.linen`` (the functional module API) and
``flaxen.nnx`` (stateful graph modules) mirror Flax's public API: a Flax program runs on
flaxen by changing its imports.
"""

import importlib

from flaxen import errors, serialization, struct, traverse_util
from flaxen.configurations import config
from flaxen.flax_alias import install_as_flax, uninstall_flax_alias

__version__ = "0.1.0"

# Heavier subpackages load on first use, so `import flaxen` stays cheap.
_LAZY = (
  "checkpoint", "configurations", "core", "cursor", "initializers", "jax_utils", "linen", "nnx",
  "ops", "training", "typing",
)


def __getattr__(name: str):
  if name in _LAZY:
    return importlib.import_module(f"flaxen.{name}")
  raise AttributeError(f"module 'flaxen' has no attribute {name!r}")


__all__ = [
  "config", "errors", "install_as_flax", "serialization", "struct", "traverse_util",
  "uninstall_flax_alias", *_LAZY,
]
