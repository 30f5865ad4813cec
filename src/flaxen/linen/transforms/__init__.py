"""Lifted transforms: JAX transforms applied to Module methods (functionalization).

Every transform is built on one mechanism, :mod:`flaxen.linen.transforms.lift`: snapshot the
variables and rngs of the scopes a call touches, run the JAX transform on a pure function that
rebuilds the modules, and write the updated collections back.
"""

from flaxen.linen.transforms.checkpoint import checkpoint, remat
from flaxen.linen.transforms.jit import jit
from flaxen.linen.transforms.scan import broadcast, remat_scan, scan
from flaxen.linen.transforms.vmap import vmap

__all__ = ["vmap", "scan", "remat_scan", "broadcast", "checkpoint", "remat", "jit"]
