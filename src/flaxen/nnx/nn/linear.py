"""Linear NNX layers: Linear, LinearGeneral, Einsum and Embed.

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
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from flaxen import initializers
from flaxen.errors.layers import AxisCountError
from flaxen.nnx.module import Module
from flaxen.nnx.rnglib import Rngs
from flaxen.nnx.variables import Param, VariableMetadata
from flaxen.ops import embed as embed_ops
from flaxen.ops import linear as linear_ops
from flaxen.typing import DotGeneralT, Dtype, EinsumT, Initializer, PrecisionLike

__all__ = ["Einsum", "Embed", "Linear", "LinearGeneral"]

default_kernel_init = initializers.lecun_normal()
default_bias_init = initializers.zeros_init()
default_embed_init = initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)
NO_METADATA: Mapping[str, Any] = MappingProxyType({})


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
    rngs: random streams; keys are drawn from ``rngs.params()``.
    kernel_metadata, bias_metadata: metadata of the Params (e.g. ``sharding``).

  Raises (on call):
    FeatureSizeError: the input's last axis is not ``in_features``.
  """

  def __init__(self, in_features: int, out_features: int, *, use_bias: bool = True,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               precision: PrecisionLike = None, kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = default_bias_init,
               dot_general: DotGeneralT = lax.dot_general, rngs: Rngs,
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
    self.kernel_init = kernel_init
    self.bias_init = bias_init
    self.dot_general = dot_general

  def __call__(self, inputs: jax.Array) -> jax.Array:
    bias = self.bias.value if self.bias is not None else None
    return linear_ops.dense(inputs, self.kernel.value, bias, dtype=self.dtype,
                            precision=self.precision, dot_general=self.dot_general,
                            where=type(self).__name__)


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
    in_features: size(s) of the contracted input axes, one per entry of ``axis``.
    out_features: size(s) of the output feature axes.
    axis: the input axes to contract.
    batch_axis: ``{axis: size}`` of leading input axes with a separate kernel per index.
    use_bias, dtype, param_dtype, kernel_init, bias_init, precision, dot_general, rngs,
      kernel_metadata, bias_metadata: as in :class:`Linear`.

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
               dot_general: DotGeneralT = lax.dot_general, rngs: Rngs,
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
    self.kernel_init = kernel_init
    self.bias_init = bias_init
    self.precision = precision
    self.dot_general = dot_general
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

  def __call__(self, inputs: jax.Array) -> jax.Array:
    bias = self.bias.value if self.bias is not None else None
    return linear_ops.dense_general(
      inputs, self.kernel.value, bias, axis=self.axis, batch_dims=sorted(self.batch_axis),
      dtype=self.dtype, precision=self.precision, dot_general=self.dot_general,
      where=type(self).__name__,
    )


class Einsum(Module):
  """``einsum(einsum_str, inputs, kernel) + bias`` with a kernel of ``kernel_shape``.

  Args:
    einsum_str: two-operand subscripts ``'inputs,kernel->out'``; may instead be passed to
      ``__call__``.
    kernel_shape: the kernel's shape.
    bias_shape: the bias's shape (the kernel's dims that appear in the output), or ``None``
      for no bias.
    dtype, param_dtype, precision, kernel_init, bias_init, rngs, kernel_metadata,
      bias_metadata: as in :class:`Linear`.
    einsum_op: replaces ``jnp.einsum``.

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
               bias_init: Initializer = default_bias_init, einsum_op: EinsumT = jnp.einsum,
               rngs: Rngs, kernel_metadata: Mapping[str, Any] = NO_METADATA,
               bias_metadata: Mapping[str, Any] = NO_METADATA):
    self.kernel = Param(kernel_init(rngs.params(), tuple(kernel_shape), param_dtype),
                        **kernel_metadata)
    self.bias = (Param(bias_init(rngs.params(), tuple(bias_shape), param_dtype), **bias_metadata)
                 if bias_shape is not None else None)
    self.einsum_str = einsum_str
    self.kernel_shape = tuple(kernel_shape)
    self.bias_shape = None if bias_shape is None else tuple(bias_shape)
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.precision = precision
    self.kernel_init = kernel_init
    self.bias_init = bias_init
    self.einsum_op = einsum_op

  def __call__(self, inputs: jax.Array, einsum_str: str | None = None) -> jax.Array:
    einsum_str = self.einsum_str if einsum_str is None else einsum_str
    bias = self.bias.value if self.bias is not None else None
    return linear_ops.einsum(einsum_str, inputs, self.kernel.value, bias, dtype=self.dtype,
                             precision=self.precision, einsum_fn=self.einsum_op,
                             where=type(self).__name__)


class Embed(Module):
  """A table of ``num_embeddings`` vectors of size ``features``, looked up by integer ids.

  Args:
    num_embeddings: number of rows.
    features: size of each vector.
    dtype: dtype of the looked-up vectors (default: the table's).
    param_dtype: dtype of the table.
    embedding_init: initializer of the ``(num_embeddings, features)`` table.
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
               rngs: Rngs, embedding_metadata: Mapping[str, Any] = NO_METADATA):
    self.embedding = Param(embedding_init(rngs.params(), (num_embeddings, features),
                                          param_dtype), **embedding_metadata)
    self.num_embeddings = num_embeddings
    self.features = features
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.embedding_init = embedding_init

  def __call__(self, inputs: Any) -> jax.Array:
    """The vectors of integer ``inputs``: shape ``inputs.shape + (features,)``."""
    return embed_ops.lookup(self.embedding.value, inputs, dtype=self.dtype,
                            where=type(self).__name__)

  def attend(self, query: jax.Array) -> jax.Array:
    """``query @ embedding.T``: logits over the table (for tied input/output embeddings)."""
    return embed_ops.attend(self.embedding.value, query, dtype=self.dtype)
