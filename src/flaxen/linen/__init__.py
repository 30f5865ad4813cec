"""The Linen functional module API (``import flaxen.linen as nn``).

Modules are dataclasses that describe a computation; ``init`` and ``apply`` bind them to
variables and rng streams for the duration of one pure call (see :mod:`flaxen.linen.module`).
"""

from flaxen.core import DenyList as DenyList
from flaxen.core import FrozenDict as FrozenDict
from flaxen.core import meta as meta
from flaxen.core.meta import PARTITION_NAME as PARTITION_NAME
from flaxen.core.meta import AxisMetadata as AxisMetadata
from flaxen.core.meta import Partitioned as Partitioned
from flaxen.core.meta import get_partition_spec as get_partition_spec
from flaxen.core.meta import unbox as unbox
from flaxen.core.meta import with_partitioning as with_partitioning
from flaxen.linen import activation as activation
from flaxen.linen import dtypes as dtypes
from flaxen.linen import initializers as initializers
from flaxen.linen.activation import *  # noqa: F403
from flaxen.linen.attention import *  # noqa: F403
from flaxen.linen.batch_apply import BatchApply as BatchApply
from flaxen.linen.combinators import Sequential as Sequential
from flaxen.linen.fp8 import Fp8DirectDotGeneralOp as Fp8DirectDotGeneralOp
from flaxen.linen.fp8 import Fp8DotGeneral as Fp8DotGeneral
from flaxen.linen.fp8 import Fp8DotGeneralOp as Fp8DotGeneralOp
from flaxen.linen.fp8 import Fp8Einsum as Fp8Einsum
from flaxen.linen.fp8 import NANOOFp8DotGeneralOp as NANOOFp8DotGeneralOp
from flaxen.linen.functional import apply as apply
from flaxen.linen.functional import init as init
from flaxen.linen.functional import init_with_output as init_with_output
from flaxen.linen.functional import share_scope as share_scope
from flaxen.linen.initializers import ones as ones
from flaxen.linen.initializers import ones_init as ones_init
from flaxen.linen.initializers import zeros as zeros
from flaxen.linen.initializers import zeros_init as zeros_init
from flaxen.linen.linear import Conv as Conv
from flaxen.linen.linear import ConvLocal as ConvLocal
from flaxen.linen.linear import ConvTranspose as ConvTranspose
from flaxen.linen.linear import Dense as Dense
from flaxen.linen.linear import DenseGeneral as DenseGeneral
from flaxen.linen.linear import Einsum as Einsum
from flaxen.linen.linear import Embed as Embed
from flaxen.linen.module import Module as Module
from flaxen.linen.module import Variable as Variable
from flaxen.linen.module import merge_param as merge_param
from flaxen.linen.name_scope import compact_name_scope as compact_name_scope
from flaxen.linen.normalization import BatchNorm as BatchNorm
from flaxen.linen.normalization import GroupNorm as GroupNorm
from flaxen.linen.normalization import InstanceNorm as InstanceNorm
from flaxen.linen.normalization import LayerNorm as LayerNorm
from flaxen.linen.normalization import RMSNorm as RMSNorm
from flaxen.linen.pooling import avg_pool as avg_pool
from flaxen.linen.pooling import max_pool as max_pool
from flaxen.linen.pooling import min_pool as min_pool
from flaxen.linen.pooling import pool as pool
from flaxen.linen.recurrent import RNN as RNN
from flaxen.linen.recurrent import Bidirectional as Bidirectional
from flaxen.linen.recurrent_cells import ConvLSTMCell as ConvLSTMCell
from flaxen.linen.recurrent_cells import GRUCell as GRUCell
from flaxen.linen.recurrent_cells import LSTMCell as LSTMCell
from flaxen.linen.recurrent_cells import MGUCell as MGUCell
from flaxen.linen.recurrent_cells import OptimizedLSTMCell as OptimizedLSTMCell
from flaxen.linen.recurrent_cells import RNNCellBase as RNNCellBase
from flaxen.linen.recurrent_cells import SimpleCell as SimpleCell
from flaxen.linen.spmd import LogicallyPartitioned as LogicallyPartitioned
from flaxen.linen.spmd import RulesFallback as RulesFallback
from flaxen.linen.spmd import get_logical_axis_rules as get_logical_axis_rules
from flaxen.linen.spmd import get_sharding as get_sharding
from flaxen.linen.spmd import logical_axis_rules as logical_axis_rules
from flaxen.linen.spmd import logical_to_mesh as logical_to_mesh
from flaxen.linen.spmd import logical_to_mesh_axes as logical_to_mesh_axes
from flaxen.linen.spmd import logical_to_mesh_sharding as logical_to_mesh_sharding
from flaxen.linen.spmd import set_logical_axis_rules as set_logical_axis_rules
from flaxen.linen.spmd import with_logical_constraint as with_logical_constraint
from flaxen.linen.spmd import with_logical_partitioning as with_logical_partitioning
from flaxen.linen.stochastic import Dropout as Dropout
from flaxen.linen.summary import tabulate as tabulate
from flaxen.linen.transforms import *  # noqa: F403
from flaxen.linen.weight_norm import SpectralNorm as SpectralNorm
from flaxen.linen.weight_norm import WeightNorm as WeightNorm
from flaxen.linen.wrapping import InterceptorContext as InterceptorContext
from flaxen.linen.wrapping import compact as compact
from flaxen.linen.wrapping import disable_named_call as disable_named_call
from flaxen.linen.wrapping import enable_named_call as enable_named_call
from flaxen.linen.wrapping import intercept_methods as intercept_methods
from flaxen.linen.wrapping import nowrap as nowrap
from flaxen.linen.wrapping import override_named_call as override_named_call
