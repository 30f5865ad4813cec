"""Lifted transforms: JAX transforms applied to Module methods (functionalization).

Every transform is built on one mechanism, :mod:`flaxen.linen.transforms.lift`: snapshot the
variables and rngs of the scopes a call touches, run the JAX transform on a pure function that
rebuilds the modules, and write the updated collections back.
"""

from flaxen.linen.transforms.autodiff import custom_vjp, grad, jvp, value_and_grad, vjp
from flaxen.linen.transforms.checkpoint import checkpoint, remat
from flaxen.linen.transforms.control_flow import cond, fori_loop, switch, while_loop
from flaxen.linen.transforms.fold_rngs import fold_rngs
from flaxen.linen.transforms.jit import jit
from flaxen.linen.transforms.map_variables import map_variables
from flaxen.linen.transforms.metadata_axis import add_metadata_axis
from flaxen.linen.transforms.named_call import named_call
from flaxen.linen.transforms.scan import broadcast, remat_scan, scan
from flaxen.linen.transforms.vmap import vmap

__all__ = [
  "vmap", "scan", "remat_scan", "broadcast", "checkpoint", "remat", "jit", "vjp", "jvp",
  "grad", "value_and_grad", "custom_vjp", "cond", "switch", "while_loop", "fori_loop",
  "map_variables", "named_call", "fold_rngs", "add_metadata_axis",
]
