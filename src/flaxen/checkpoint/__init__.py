"""Checkpoints of any JAX pytree, built on orbax-checkpoint."""

from flaxen.checkpoint.save_restore import restore, save

__all__ = ["save", "restore"]
