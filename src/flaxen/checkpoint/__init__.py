"""Checkpoints of any JAX pytree, built on orbax-checkpoint.

:func:`save` and :func:`restore` write and read one tree in one directory;
:class:`CheckpointManager` keeps numbered training steps, pruning old ones. Any pytree
works: Linen variables, ``nnx.State`` (restore into ``nnx.eval_shape``'s abstract state),
optax states and struct dataclass train states. A restore target is checked against the
checkpoint's metadata before any array is read, and saves are atomic.

>>> import tempfile, jax, numpy as np
>>> from flaxen import checkpoint
>>> path = tempfile.mkdtemp() + "/ckpt"
>>> checkpoint.save(path, {"params": {"w": np.zeros((2,), np.float32)}})
>>> try:
...   checkpoint.restore(path, {"params": {"w": jax.ShapeDtypeStruct((3,), np.float32)}})
... except checkpoint.CheckpointMismatchError as e:
...   print(e.path, "|", e.expected, "|", e.found)
params/w | float32[3] | float32[2]
"""

from flaxen.checkpoint.manager import CheckpointManager
from flaxen.checkpoint.save_restore import restore, save
from flaxen.errors.checkpoint import (
  CheckpointCorruptedError,
  CheckpointError,
  CheckpointExistsError,
  CheckpointMismatchError,
  CheckpointNotFoundError,
)

__all__ = [
  "save", "restore", "CheckpointManager", "CheckpointError", "CheckpointNotFoundError",
  "CheckpointExistsError", "CheckpointCorruptedError", "CheckpointMismatchError",
]
