"""Every error a user can cause in flaxen.

Each class explains what went wrong, where (the class and field, the module path, the
collection, the variable) and how to fix it. The classes also derive from the built-in
exception that plain Python or JAX would raise in the same place (``TypeError``,
``ValueError``, ...), so existing ``except`` clauses keep working. The catalogue is split
by area (one file each) and re-exported here, so every class is ``flaxen.errors.<Name>``.
docs/errors.md lists every class with an example that raises it and the fix; a test runs
the examples and fails when a class has no entry.

>>> from flaxen import errors, struct
>>> @struct.dataclass
... class Point:
...   x: float
>>> try:
...   Point(1.0).x = 2.0
... except errors.FrozenStructError as e:
...   print(e)  # doctest: +ELLIPSIS
Cannot assign to field 'x' of Point: struct dataclasses are immutable. Fix: ...
"""

from flaxen.errors.base import *  # noqa: F403
from flaxen.errors.checkpoint import *  # noqa: F403
from flaxen.errors.config import *  # noqa: F403
from flaxen.errors.core import *  # noqa: F403
from flaxen.errors.cursor import *  # noqa: F403
from flaxen.errors.flax_alias import *  # noqa: F403
from flaxen.errors.flax_names import *  # noqa: F403
from flaxen.errors.layers import *  # noqa: F403
from flaxen.errors.linen import *  # noqa: F403
from flaxen.errors.nested import *  # noqa: F403
from flaxen.errors.nnx import *  # noqa: F403
from flaxen.errors.nnx_bridge import *  # noqa: F403
from flaxen.errors.nnx_transforms import *  # noqa: F403
from flaxen.errors.nnx_tree import *  # noqa: F403
from flaxen.errors.pytree import *  # noqa: F403
from flaxen.errors.sharding import *  # noqa: F403
from flaxen.errors.training import *  # noqa: F403
from flaxen.errors.training_checkpoints import *  # noqa: F403
