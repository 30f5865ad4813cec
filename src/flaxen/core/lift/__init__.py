"""Lifted JAX transforms of scope functions ``fn(scope, *args)`` (Flax's ``flax.core.lift``).

Each transform snapshots the variables and rng streams of the scopes it is given, runs the
function under the JAX transform on fresh scopes bound at the same paths, and writes the
mutated collections back. ``engine.py`` holds what Linen's transforms share with these;
each ``*_lift`` factory builds the :class:`Lift` that both use.
"""

from flaxen.core.lift.autodiff import custom_vjp, jvp, value_and_grad, vjp
from flaxen.core.lift.checkpoint import checkpoint, remat, remat_scan
from flaxen.core.lift.control_flow import cond, switch, while_loop
from flaxen.core.lift.engine import Lift
from flaxen.core.lift.jit import jit
from flaxen.core.lift.scan import scan
from flaxen.core.lift.scopes import lift_scopes
from flaxen.core.lift.vmap import vmap

__all__ = ["vmap", "scan", "jit", "checkpoint", "remat", "remat_scan", "vjp", "jvp",
           "custom_vjp", "value_and_grad", "cond", "switch", "while_loop", "Lift", "lift_scopes"]
