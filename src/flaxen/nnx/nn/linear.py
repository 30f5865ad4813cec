"""Linear NNX layers: Linear, LinearGeneral, Einsum and Embed (Conv, ConvTranspose and
``canonicalize_padding`` are re-exported here too, where Flax's ``nnx.nn.linear`` has them).

Each layer creates its Params in ``__init__`` (names, shapes and default initializers as in
Flax) and calls the matching function of :mod:`flaxen.ops`.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> layer = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
>>> layer(jnp.ones((4, 2))).shape
(4, 3)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from flaxen.errors.layers import AxisCountError
from flaxen.nnx.module import Module
from flaxen.nnx.nn.conv import Conv, ConvTranspose, canonicalize_padding
from flaxen.nnx.nn.defaults import (
  NO_METADATA,
  default_bias_init,
  default_embed_init,
  default_kernel_init,
  rule_of,
)
from flaxen.nnx.nn.dtypes import promote_dtype as default_promote_dtype
from flaxen.nnx.rnglib import Rngs
from flaxen.nnx.variables import Param, VariableMetadata
from flaxen.ops import embed as embed_ops
from flaxen.ops import linear as linear_ops
from flaxen.typing import DotGeneralT, Dtype, EinsumT, Initializer, PrecisionLike, PromoteDtypeFn

__all__ = [
  "Conv", "ConvTranspose", "Einsum", "Embed", "Linear", "LinearGeneral", "canonicalize_padding",
  "default_bias_init", "default_embed_init", "default_kernel_init",
]


def _as_tuple(x: int | Sequence[int]) -> tuple[int, ...]:
  return (int(x),) if isinstance(x, int | np.integer) else tuple(int(v) for v in x)


class Linear(Module):
  """``y = x @ kernel + bias`` over the last axis of ``x``.

  Args:
    in_features: size of the input's last axis.
    out_features: size of the output's last axis.
    use_bias: whether to add a bias.
    dtype: the computation dtype (``None``: the promoted dtype of inputs and params).
    param_dtype: the dtype params are created in.
    precision: precision of the matmul.
    kernel_init: initializer of the ``(in_features, out_features)`` kernel.
    bias_init: initializer of the ``(out_features,)`` bias.
    dot_general: replaces ``lax.dot_general``.
    promote_dtype: the dtype promotion rule, called as ``promote_dtype((inputs, kernel,
      bias), dtype=dtype)`` (default :func:`flaxen.nnx.nn.dtypes.promote_dtype`).
    preferred_element_type: the matmul's accumulation and result dtype (``None``: JAX's).
    rngs: random streams; keys are drawn from ``rngs.params()``.
    kernel_metadata, bias_metadata: metadata of the Params (e.g. ``sharding``).

  Call with ``out_sharding`` to give the result's sharding (under a mesh with explicit axes).

  Raises (on call):
    FeatureSizeError: the input's last axis is not ``in_features``.
  """

  def __init__(self, in_features: int, out_features: int, *, use_bias: bool = True,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               precision: PrecisionLike = None, kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = default_bias_init,
               dot_general: DotGeneralT = lax.dot_general,
               promote_dtype: PromoteDtypeFn = default_promote_dtype,
               preferred_element_type: Dtype | None = None, rngs: Rngs,
               kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    self.kernel = Param(kernel_init(rngs.params(), (in_features, out_features), param_dtype),
                        **kernel_metadata)
    self.bias = (Param(bias_init(rngs.params(), (out_features,), param_dtype), **bias_metadata)
                 if use_bias else None)
    self.in_features = in_features
    self.out_features = out_features
    self.use_bias = use_bias
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.precision = precision
    self.dot_general = dot_general
    self.promote_dtype = promote_dtype
    self.preferred_element_type = preferred_element_type

  def __call__(self, inputs: jax.Array, out_sharding: Any = None) -> jax.Array:
    bias = self.bias.value if self.bias is not None else None
    return linear_ops.dense(inputs, self.kernel.value, bias, dtype=self.dtype,
                            precision=self.precision, dot_general=self.dot_general,
                            promote_rule=rule_of(self.promote_dtype),
                            preferred_element_type=self.preferred_element_type,
                            out_sharding=out_sharding, where=type(self).__name__)


def _flat_init(init: Initializer, flat_shape: tuple[int, ...]) -> Initializer:
  """Initializes ``flat_shape`` (so fan-in/out see the flattened dims), then reshapes."""

  def reshaped(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> Any:
    value = init(key, flat_shape, dtype)
    if isinstance(value, VariableMetadata):  # e.g. nnx.with_partitioning: keep the metadata
      return VariableMetadata(jnp.reshape(value.raw_value, shape), value.metadata)
    return jnp.reshape(value, shape)

  return reshaped


class LinearGeneral(Module):
  """A linear map from one or more input ``axis`` to one or more output feature axes.

  The kernel has shape ``batch_shape + in_features + out_features`` and the bias
  ``batch_shape + out_features``; initializers see them flattened to
  ``(prod(batch + in), prod(out))`` and ``(prod(batch + out),)``.

  Args:
    in_features: size(s) of the contracted input axes, in the order those axes have in the
      input (``axis`` is sorted, as in Flax).
    out_features: size(s) of the output feature axes.
    axis: the input axes to contract.
    batch_axis: ``{axis: size}`` of leading input axes with a separate kernel per index.
    use_bias, dtype, param_dtype, kernel_init, bias_init, precision, promote_dtype,
      preferred_element_type, rngs, kernel_metadata, bias_metadata: as in :class:`Linear`.
    dot_general: replaces ``lax.dot_general`` (``None``: ``lax.dot_general``).
    dot_general_cls: a class whose instances replace ``lax.dot_general`` (one per call).

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> layer = nnx.LinearGeneral((2, 3), 4, axis=(-2, -1), rngs=nnx.Rngs(0))
  >>> layer.kernel.value.shape, layer(jnp.ones((5, 2, 3))).shape
  ((2, 3, 4), (5, 4))
  """

  def __init__(self, in_features: int | Sequence[int], out_features: int | Sequence[int], *,
               axis: int | Sequence[int] = -1, batch_axis: Mapping[int, int] | None = None,
               use_bias: bool = True, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = default_bias_init, precision: PrecisionLike = None,
               promote_dtype: PromoteDtypeFn = default_promote_dtype,
               dot_general: DotGeneralT | None = None, dot_general_cls: Any = None,
               preferred_element_type: Dtype | None = None, rngs: Rngs,
               kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    self.in_features = _as_tuple(in_features)
    self.out_features = _as_tuple(out_features)
    self.axis = _as_tuple(axis)
    if len(self.axis) != len(self.in_features):
      raise AxisCountError(type(self).__name__, self.axis, self.in_features)
    self.batch_axis = dict(batch_axis or {})
    batch_shape = tuple(self.batch_axis[a] for a in sorted(self.batch_axis))
    self.use_bias = use_bias
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.precision = precision
    self.promote_dtype = promote_dtype
    self.dot_general = dot_general
    self.dot_general_cls = dot_general_cls
    self.preferred_element_type = preferred_element_type
    prod = lambda s: int(np.prod(s))  # noqa: E731
    kernel_shape = batch_shape + self.in_features + self.out_features
    flat = (prod(batch_shape + self.in_features), prod(self.out_features))
    self.kernel = Param(_flat_init(kernel_init, flat)(rngs.params(), kernel_shape, param_dtype),
                        **kernel_metadata)
    self.bias = None
    if use_bias:
      bias_shape = batch_shape + self.out_features
      init = _flat_init(bias_init, (prod(bias_shape),))
      self.bias = Param(init(rngs.params(), bias_shape, param_dtype), **bias_metadata)

  def __call__(self, inputs: jax.Array, out_sharding: Any = None) -> jax.Array:
    bias = self.bias.value if self.bias is not None else None
    if self.dot_general_cls is not None:
      dot_general = self.dot_general_cls()
    else:
      dot_general = lax.dot_general if self.dot_general is None else self.dot_general
    # Sorted, as Flax does: the kernel's in_features follow the input's axis order.
    ndim = jnp.ndim(inputs)
    axis = self.axis
    if all(-ndim <= a < ndim for a in axis):
      axis = tuple(sorted(a % ndim for a in axis))
    return linear_ops.dense_general(
      inputs, self.kernel.value, bias, axis=axis, batch_dims=sorted(self.batch_axis),
      dtype=self.dtype, precision=self.precision, dot_general=dot_general,
      promote_rule=rule_of(self.promote_dtype),
      preferred_element_type=self.preferred_element_type, out_sharding=out_sharding,
      where=type(self).__name__,
    )


class Einsum(Module):
  """``einsum(einsum_str, inputs, kernel) + bias`` with a kernel of ``kernel_shape``.

  Args:
    einsum_str: explicit two-operand subscripts ``'inputs,kernel->out'`` (``'...'`` allowed
      in each part); one given to ``__call__`` takes precedence.
    kernel_shape: the kernel's shape.
    bias_shape: the bias's shape (the kernel's dims that appear in the output), or ``None``
      for no bias.
    dtype, param_dtype, precision, kernel_init, bias_init, promote_dtype,
      preferred_element_type, rngs, kernel_metadata, bias_metadata: as in :class:`Linear`.
    einsum_op: replaces ``jnp.einsum`` (called with ``precision=`` and, when set,
      ``preferred_element_type=`` / ``out_sharding=``).

  Raises:
    EinsumSubscriptsError: ``einsum_str`` is not ``'inputs,kernel->out'``.

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> layer = nnx.Einsum('nta,hab->nthb', (8, 2, 4), (8, 4), rngs=nnx.Rngs(0))
  >>> layer(jnp.ones((16, 11, 2))).shape
  (16, 11, 8, 4)
  """

  def __init__(self, einsum_str: str, kernel_shape: Sequence[int],
               bias_shape: Sequence[int] | None = None, *, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, precision: PrecisionLike = None,
               kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = default_bias_init,
               promote_dtype: PromoteDtypeFn = default_promote_dtype,
               einsum_op: EinsumT = jnp.einsum, preferred_element_type: Dtype | None = None,
               rngs: Rngs, kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    kernel_shape = _as_tuple(kernel_shape)
    bias_shape = None if bias_shape is None else _as_tuple(bias_shape)
    if einsum_str is not None:
      einsum_str = einsum_str.replace(" ", "")
      linear_ops.parse_einsum(einsum_str, None, kernel_shape, type(self).__name__)
    self.kernel = Param(kernel_init(rngs.params(), kernel_shape, param_dtype), **kernel_metadata)
    self.bias = (Param(bias_init(rngs.params(), bias_shape, param_dtype), **bias_metadata)
                 if bias_shape is not None else None)
    self.einsum_str = einsum_str
    self.kernel_shape = kernel_shape
    self.bias_shape = bias_shape
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.precision = precision
    self.promote_dtype = promote_dtype
    self.einsum_op = einsum_op
    self.preferred_element_type = preferred_element_type

  def __call__(self, inputs: jax.Array, einsum_str: str | None = None,
               out_sharding: Any = None) -> jax.Array:
    einsum_str = self.einsum_str if einsum_str is None else einsum_str
    bias = self.bias.value if self.bias is not None else None
    return linear_ops.einsum(
      einsum_str, inputs, self.kernel.value, bias, dtype=self.dtype, precision=self.precision,
      einsum_fn=self.einsum_op, promote_rule=rule_of(self.promote_dtype),
      preferred_element_type=self.preferred_element_type, out_sharding=out_sharding,
      where=type(self).__name__,
    )


class Embed(Module):
  """A table of ``num_embeddings`` vectors of size ``features``, looked up by integer ids.

  Args:
    num_embeddings: number of rows.
    features: size of each vector.
    dtype: dtype of the looked-up vectors (default: the table's).
    param_dtype: dtype of the table.
    embedding_init: initializer of the ``(num_embeddings, features)`` table.
    promote_dtype: as in :class:`Linear` (the lookup calls it with ``inexact=False``).
    rngs: random streams (``params``).
    embedding_metadata: metadata of the table's Param (e.g. ``sharding``).

  >>> import jax.numpy as jnp
  >>> from flaxen import nnx
  >>> embed = nnx.Embed(10, 3, rngs=nnx.Rngs(0))
  >>> embed(jnp.array([[1, 2]])).shape, embed.attend(jnp.ones(3)).shape
  ((1, 2, 3), (10,))
  """

  def __init__(self, num_embeddings: int, features: int, *, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, embedding_init: Initializer = default_embed_init,
               promote_dtype: PromoteDtypeFn = default_promote_dtype, rngs: Rngs,
               embedding_metadata: Mapping[str, Any] = NO_METADATA):
    self.embedding = Param(embedding_init(rngs.params(), (num_embeddings, features),
                                          param_dtype), **embedding_metadata)
    self.num_embeddings = num_embeddings
    self.features = features
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.promote_dtype = promote_dtype

  def __call__(self, inputs: Any, out_sharding: Any = None) -> jax.Array:
    """The vectors of integer ``inputs``: shape ``inputs.shape + (features,)``."""
    return embed_ops.lookup(self.embedding.value, inputs, dtype=self.dtype,
                            promote_rule=rule_of(self.promote_dtype), out_sharding=out_sharding,
                            where=type(self).__name__)

  def attend(self, query: jax.Array, out_sharding: Any = None) -> jax.Array:
    """``query @ embedding.T``: logits over the table (for tied input/output embeddings)."""
    return embed_ops.attend(self.embedding.value, query, dtype=self.dtype,
                            promote_rule=rule_of(self.promote_dtype), out_sharding=out_sharding)
