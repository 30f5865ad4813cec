"""The Linen functional module API (``import flaxen.linen as nn``).

Modules are dataclasses that describe a computation; ``init`` and ``apply`` bind them to
variables and rng streams for the duration of one pure call (see :mod:`flaxen.linen.module`).
"""

from flaxen.core import DenyList as DenyList
from flaxen.core import FrozenDict as FrozenDict
from flaxen.core.meta import AxisMetadata as AxisMetadata
from flaxen.core.meta import Partitioned as Partitioned
from flaxen.core.meta import get_partition_spec as get_partition_spec
from flaxen.core.meta import with_partitioning as with_partitioning
from flaxen.linen.functional import apply as apply
from flaxen.linen.functional import init as init
from flaxen.linen.functional import init_with_output as init_with_output
from flaxen.linen.functional import share_scope as share_scope
from flaxen.linen.module import Module as Module
from flaxen.linen.module import Variable as Variable
from flaxen.linen.module import merge_param as merge_param
from flaxen.linen.wrapping import InterceptorContext as InterceptorContext
from flaxen.linen.wrapping import compact as compact
from flaxen.linen.wrapping import disable_named_call as disable_named_call
from flaxen.linen.wrapping import enable_named_call as enable_named_call
from flaxen.linen.wrapping import intercept_methods as intercept_methods
from flaxen.linen.wrapping import nowrap as nowrap
from flaxen.linen.wrapping import override_named_call as override_named_call

# Layers (Dense, Conv, BatchNorm, Dropout, attention, ...) are imported below.
