"""Linear maps: ``dense``, ``dense_general`` and ``einsum`` over given params.

Each op promotes inputs and params to one dtype (see :mod:`flaxen.ops.dtypes`), contracts
them with a pluggable ``dot_general`` (or ``einsum``) at the given ``precision``, and adds
the bias broadcast over the non-feature dimensions.

>>> import jax.numpy as jnp
>>> dense(jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.zeros(4)).shape
(2, 4)
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax

from flaxen.errors.layers import EinsumSubscriptsError, FeatureSizeError, InputShapeError
from flaxen.ops._lax import inline_jit, same_dtype
from flaxen.ops.dtypes import PromoteFn, promote
from flaxen.typing import Array, DotGeneralT, Dtype, EinsumT, PrecisionLike

__all__ = [
  "canonicalize_axes", "check_axes", "contraction_kwargs", "dense", "dense_general", "einsum",
  "einsum_bias_shape", "parse_einsum",
]


def canonicalize_axes(ndim: int, axes: int | Sequence[int]) -> tuple[int, ...]:
  """Non-negative axes for an array of rank ``ndim`` (an int means a 1-tuple).

  >>> canonicalize_axes(3, (-1, 0))
  (2, 0)
  """
  axes = (axes,) if isinstance(axes, int | np.integer) else tuple(axes)
  return tuple(int(a) % ndim if ndim else int(a) for a in axes)


def _add_bias(y: Array, bias: Array, shape: Sequence[int]) -> Array:
  """``y + bias.reshape(shape)``; bound as two primitives when no promotion is involved (a
  custom ``dot_general`` may return another dtype than the bias)."""
  if same_dtype(y, bias) is None:
    return y + jnp.reshape(bias, shape)
  return lax.add(y, lax.reshape(bias, tuple(shape)))


@inline_jit("dims", "precision", "bias_shape")
def _dot_bias(inputs: Array, kernel: Array, bias: Array | None, *, dims: tuple,
              precision: PrecisionLike, bias_shape: tuple[int, ...]) -> Array:
  """``lax.dot_general`` plus the bias reshaped to ``bias_shape``, as one inlined jit."""
  y = lax.dot_general(inputs, kernel, dims, precision=precision)
  return y if bias is None else _add_bias(y, bias, bias_shape)


def contraction_kwargs(preferred_element_type: Dtype | None, out_sharding: Any) -> dict:
  """The optional keywords of a contraction call, given only when set (so a custom
  ``dot_general`` / ``einsum`` / ``conv_general_dilated`` without them keeps working)."""
  kwargs = {}
  if preferred_element_type is not None:
    kwargs["preferred_element_type"] = preferred_element_type
  if out_sharding is not None:
    kwargs["out_sharding"] = out_sharding
  return kwargs


def _contract(inputs: Array, kernel: Array, bias: Array | None, dims: tuple,
              bias_shape: tuple[int, ...] | None, precision: PrecisionLike,
              dot_general: DotGeneralT, kwargs: dict) -> Array:
  if dot_general is lax.dot_general and not kwargs:
    return _dot_bias(inputs, kernel, bias, dims=dims, precision=precision, bias_shape=bias_shape)
  y = dot_general(inputs, kernel, dims, precision=precision, **kwargs)
  return y if bias is None else _add_bias(y, bias, bias_shape)


def dense(
  inputs: Array,
  kernel: Array,
  bias: Array | None = None,
  *,
  dtype: Dtype | None = None,
  precision: PrecisionLike = None,
  dot_general: DotGeneralT = lax.dot_general,
  promote_rule: PromoteFn | None = None,
  preferred_element_type: Dtype | None = None,
  out_sharding: Any = None,
  where: str = "Dense",
) -> Array:
  """``inputs @ kernel + bias`` over the last axis of ``inputs``.

  Args:
    inputs: array of shape ``(..., in_features)``.
    kernel: array of shape ``(in_features, features)``.
    bias: ``None`` or array of shape ``(features,)``.
    dtype: computation dtype; ``None`` means the result type of the arguments.
    precision: ``lax`` precision of the contraction.
    dot_general: the contraction function, with ``lax.dot_general``'s signature.
    promote_rule: the layer's ``promote_dtype`` (see :func:`flaxen.ops.dtypes.promote`).
    preferred_element_type: the contraction's accumulation and result dtype.
    out_sharding: the sharding of the contraction's result.
    where: the layer named in error messages.

  Raises:
    InputShapeError: ``inputs`` is a scalar (it has no feature axis).
    FeatureSizeError: ``inputs.shape[-1]`` differs from ``kernel.shape[0]``.
  """
  inputs = jnp.asarray(inputs)
  if inputs.ndim == 0 or inputs.shape[-1] != kernel.shape[0]:
    n = kernel.shape[0]
    if inputs.ndim == 0:
      raise InputShapeError(
        where, f"shape (..., {n}): a last axis with the kernel's {n} input feature(s)",
        inputs.shape, f"pass an array of shape (batch..., {n}); a scalar has no feature axis",
      )
    raise FeatureSizeError(where, "kernel", n, inputs.shape[-1], inputs.shape)
  inputs, kernel, bias = promote((inputs, kernel, bias), dtype=dtype, rule=promote_rule)
  dims = (((inputs.ndim - 1,), (0,)), ((), ()))
  bias_shape = None if bias is None else (1,) * (inputs.ndim - 1) + (bias.size,)
  kwargs = contraction_kwargs(preferred_element_type, out_sharding)
  return _contract(inputs, kernel, bias, dims, bias_shape, precision, dot_general, kwargs)


def dense_general(
  inputs: Array,
  kernel: Array,
  bias: Array | None = None,
  *,
  axis: int | Sequence[int] = -1,
  batch_dims: Sequence[int] = (),
  dtype: Dtype | None = None,
  precision: PrecisionLike = None,
  dot_general: DotGeneralT = lax.dot_general,
  promote_rule: PromoteFn | None = None,
  preferred_element_type: Dtype | None = None,
  out_sharding: Any = None,
  where: str = "DenseGeneral",
) -> Array:
  """Contracts ``inputs`` over ``axis`` with a kernel, batched over ``batch_dims``.

  The kernel has shape ``batch_shape + contracted_shape + features`` and the bias
  ``batch_shape + features``; the output has the batch dims first, then the inputs' free
  dims, then ``features``. ``batch_dims`` must be leading dims ``0..n-1``. ``promote_rule``,
  ``preferred_element_type`` and ``out_sharding`` as in :func:`dense`.

  Raises:
    InputShapeError: ``axis`` names a dim ``inputs`` lacks (or one twice); ``batch_dims``
      are not leading dims, or overlap ``axis``.
    FeatureSizeError: a contracted dim differs from the kernel's.

  >>> dense_general(jnp.ones((2, 3, 4)), jnp.ones((3, 4, 5)), axis=(1, 2)).shape
  (2, 5)
  """
  inputs = jnp.asarray(inputs)
  n_axes = 1 if isinstance(axis, int | np.integer) else len(axis)
  check_axes(inputs.shape, axis, kernel.shape[len(batch_dims):][:n_axes], where)
  axis = canonicalize_axes(inputs.ndim, axis)
  batch_dims = canonicalize_axes(inputs.ndim, batch_dims)
  if set(batch_dims) != set(range(len(batch_dims))) or set(batch_dims) & set(axis):
    raise InputShapeError(
      where, f"batch_dims {batch_dims} to be leading dims 0..n-1, disjoint from axis {axis}",
      inputs.shape, "move batch axes to the front and keep them out of `axis`",
    )
  n_batch = len(batch_dims)
  for i, ax in enumerate(axis):
    if inputs.shape[ax] != kernel.shape[n_batch + i]:
      raise FeatureSizeError(
        f"{where} (axis {ax})", "kernel", kernel.shape[n_batch + i], inputs.shape[ax], inputs.shape
      )
  inputs, kernel, bias = promote((inputs, kernel, bias), dtype=dtype, rule=promote_rule)
  contract = tuple(range(n_batch, n_batch + len(axis)))
  dims = ((axis, contract), (batch_dims, tuple(range(n_batch))))
  bias_shape = None
  if bias is not None:
    free = inputs.ndim - n_batch - len(axis)
    bias_shape = bias.shape[:n_batch] + (1,) * free + bias.shape[n_batch:]
  kwargs = contraction_kwargs(preferred_element_type, out_sharding)
  return _contract(inputs, kernel, bias, dims, bias_shape, precision, dot_general, kwargs)


def check_axes(shape: tuple[int, ...], axis: int | Sequence[int],
               in_sizes: tuple[int, ...] | None, where: str) -> None:
  """Raises InputShapeError unless ``axis`` names distinct dims of an array of ``shape``
  (``in_sizes``: the kernel's contracted sizes, None before the kernel exists)."""
  axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
  ndim = len(shape)
  if all(-ndim <= a < ndim for a in axes) and len({a % ndim for a in axes}) == len(axes):
    return
  sizes = "" if in_sizes is None else f", of sizes {in_sizes} (the kernel's)"
  raise InputShapeError(
    where, f"axis={axes} to name {len(axes)} distinct dim(s) of the input", shape,
    f"give the input the contracted dims{sizes}, or pick each axis once within "
    f"range({-ndim}, {ndim})",
  )


def _split_einsum(subscripts: str, where: str) -> tuple[str, str, str]:
  """``(lhs, rhs, out)`` of an explicit two-operand subscript string, spaces removed."""
  text = subscripts.replace(" ", "")
  operands, arrow, out = text.partition("->")
  if not arrow or operands.count(",") != 1:
    raise EinsumSubscriptsError(where, subscripts, operands.count(",") + 1, bool(arrow))
  lhs, _, rhs = operands.partition(",")
  return lhs, rhs, out


def _check_rank(where: str, operand: str, labels: str, shape: tuple[int, ...]) -> None:
  """Raises InputShapeError unless ``shape`` has one dim per label ('...': any number)."""
  n = len(labels.replace("...", ""))
  if len(shape) == n or ("..." in labels and len(shape) >= n):
    return
  dims = f"at least {n}" if "..." in labels else str(n)
  raise InputShapeError(
    f"{where} ({operand} of {labels!r})", f"{dims} dim(s), one per subscript letter", shape,
    f"pass {operand} with one dim per letter of {labels!r}, or change the subscripts"
    + (" (or kernel_shape)" if operand == "kernel" else ""),
  )


def parse_einsum(subscripts: str, lhs_shape: Sequence[int] | None, rhs_shape: Sequence[int],
                 where: str = "Einsum") -> tuple[str, str, str]:
  """``(lhs, rhs, out)`` labels of a two-operand einsum, each ``'...'`` replaced by letters.

  As in NumPy, the dims an ellipsis covers are aligned to the right across operands, and the
  output's ellipsis covers the longest of them. ``lhs_shape=None`` gives the input's
  ellipsis no dims (enough to find which kernel dims reach the output).

  Raises:
    EinsumSubscriptsError: the string is not ``'lhs,rhs->out'``.
    InputShapeError: an operand has fewer dims than letters (or another number, without
      an ellipsis).

  >>> parse_einsum('...c,dc...->...d', (2, 3, 4), (5, 4, 3))
  ('ABc', 'dcB', 'ABd')
  """
  lhs, rhs, out = _split_einsum(subscripts, where)
  lhs_ndim = len(lhs.replace("...", "")) if lhs_shape is None else len(lhs_shape)
  rhs_ndim = len(rhs_shape)
  if lhs_shape is not None:
    _check_rank(where, "inputs", lhs, tuple(lhs_shape))
  _check_rank(where, "kernel", rhs, tuple(rhs_shape))
  n_lhs = lhs_ndim - len(lhs.replace("...", "")) if "..." in lhs else 0
  n_rhs = rhs_ndim - len(rhs.replace("...", "")) if "..." in rhs else 0
  n = max(n_lhs, n_rhs)
  used = set(lhs + rhs + out)
  free = "".join([c for c in string.ascii_uppercase + string.ascii_lowercase if c not in used][:n])
  return (lhs.replace("...", free[n - n_lhs:]), rhs.replace("...", free[n - n_rhs:]),
          out.replace("...", free))


def einsum_bias_shape(subscripts: str, kernel_shape: Sequence[int]) -> tuple[int, ...]:
  """The bias shape of an einsum layer: the kernel's dims that appear in the output.

  >>> einsum_bias_shape('abc,cde->abde', (3, 4, 5))
  (4, 5)
  >>> einsum_bias_shape('a...,b...->ab...', (3, 4, 5))
  (3, 4, 5)
  """
  _, rhs, out = parse_einsum(subscripts, None, kernel_shape)
  return tuple(kernel_shape[rhs.index(c)] for c in out if c in rhs)


def einsum(
  subscripts: str,
  inputs: Array,
  kernel: Array,
  bias: Array | None = None,
  *,
  dtype: Dtype | None = None,
  precision: PrecisionLike = None,
  einsum_fn: EinsumT = jnp.einsum,
  promote_rule: PromoteFn | None = None,
  preferred_element_type: Dtype | None = None,
  out_sharding: Any = None,
  where: str = "Einsum",
) -> Array:
  """``einsum(subscripts, inputs, kernel) + bias``, the bias broadcast in output order.

  ``subscripts`` is any explicit two-operand string (``'...'`` allowed in every part, spaces
  ignored); the bias has the shape :func:`einsum_bias_shape` gives. ``promote_rule``,
  ``preferred_element_type`` and ``out_sharding`` as in :func:`dense`.

  Raises:
    EinsumSubscriptsError: ``subscripts`` is not ``'inputs,kernel->out'``.
    InputShapeError: ``inputs`` or ``kernel`` has another rank than its subscripts.

  >>> einsum('bi,io->bo', jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.ones(4)).tolist()[0]
  [4.0, 4.0, 4.0, 4.0]
  """
  inputs = jnp.asarray(inputs)
  _, rhs, out = parse_einsum(subscripts, inputs.shape, kernel.shape, where)
  inputs, kernel, bias = promote((inputs, kernel, bias), dtype=dtype, rule=promote_rule)
  kwargs = contraction_kwargs(preferred_element_type, out_sharding)
  y = einsum_fn(subscripts.replace(" ", ""), inputs, kernel, precision=precision, **kwargs)
  if bias is not None:
    shape = tuple(kernel.shape[rhs.index(c)] if c in rhs else 1 for c in out)
    y = _add_bias(y, bias, shape)
  return y
