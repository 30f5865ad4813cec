"""Errors of layers and of the stateless math behind them (``flaxen.ops``)."""

from __future__ import annotations

from collections.abc import Iterable

from flaxen.errors.base import FlaxenError, short_repr

__all__ = [
  "NonFloatingDtypeError", "InvalidPaddingError", "InputShapeError", "FeatureSizeError",
  "FeatureGroupError", "NumGroupsError", "NumHeadsError", "DropoutRngError",
  "InvalidRateError", "DecodeCacheError", "EmptySequentialError", "AttentionInputsError",
  "CarryShapeError", "SeqLengthsError", "MetricInputError", "CacheNotInitializedError",
  "EinsumSubscriptsError", "AxisCountError", "AttentionEinsumError",
]


class NonFloatingDtypeError(FlaxenError, ValueError):
  """A layer was asked to compute in an integer or boolean dtype."""

  def __init__(self, dtype: object):
    super().__init__(
      f"Layers compute in a floating or complex dtype, but got dtype {dtype}. "
      "Fix: pass dtype=jnp.float32 (or bfloat16, float16...), or cast integer inputs first."
    )


class InvalidPaddingError(FlaxenError, ValueError):
  """A ``padding`` argument is neither a known name nor ints / pairs per spatial dim."""

  def __init__(self, padding: object, num_spatial: int, reason: str):
    super().__init__(
      f"Invalid padding {short_repr(padding)} for {num_spatial} spatial dimension(s): "
      f"{reason}. Fix: pass 'SAME', 'VALID', 'CIRCULAR', 'REFLECT', 'CAUSAL', one int for every "
      f"dimension, or a sequence of {num_spatial} ints or (low, high) pairs."
    )


class InputShapeError(FlaxenError, ValueError):
  """An input's shape does not fit the layer or op it is passed to."""

  def __init__(self, where: str, expected: str, shape: Iterable[int], fix: str):
    super().__init__(
      f"{where}: expected {expected}, but the input has shape {tuple(shape)}. Fix: {fix}."
    )


class FeatureSizeError(FlaxenError, ValueError):
  """An input's feature size differs from the size its existing params were built for."""

  def __init__(self, where: str, param: str, expected: int, found: int,
               shape: Iterable[int]):
    super().__init__(
      f"{where}: param {param!r} was created for {expected} input feature(s), but the input "
      f"has {found} (input shape {tuple(shape)}). Fix: feed inputs whose contracted "
      f"dimension(s) have size {expected}, or re-initialize the params for inputs of size "
      f"{found}."
    )


class FeatureGroupError(FlaxenError, ValueError):
  """Input or output features do not split evenly into ``feature_group_count`` groups."""

  def __init__(self, where: str, what: str, features: int, groups: int):
    super().__init__(
      f"{where}: {what} {features} is not divisible by feature_group_count={groups}. "
      "Fix: choose a feature_group_count that divides both the input and output features."
    )


class NumGroupsError(FlaxenError, ValueError):
  """GroupNorm's ``num_groups`` / ``group_size`` do not fit the number of channels."""

  def __init__(self, channels: int, num_groups: object, group_size: object, reason: str):
    super().__init__(
      f"GroupNorm over {channels} channel(s) with num_groups={num_groups}, "
      f"group_size={group_size}: {reason}. Fix: set exactly one of num_groups and "
      f"group_size (the other None), dividing {channels} evenly."
    )


class NumHeadsError(FlaxenError, ValueError):
  """Attention features do not divide evenly among the heads."""

  def __init__(self, where: str, features: int, num_heads: int, what: str = "qkv_features",
               divisor: str = "num_heads"):
    super().__init__(
      f"{where}: {what}={features} is not divisible by {divisor}={num_heads}. "
      f"Fix: choose {what} as a multiple of {divisor}."
    )


class DropoutRngError(FlaxenError, ValueError):
  """Dropout is active (``deterministic=False``, rate > 0) but no random key was given."""

  def __init__(self, where: str, collection: str = "dropout"):
    super().__init__(
      f"{where}: dropout is active (deterministic=False and rate > 0) but no random key "
      f"was provided. Fix: pass rngs={{{collection!r}: key}} to apply (Linen), build the "
      f"NNX layer with rngs=nnx.Rngs({collection}=0) or pass rngs= to its call, pass a "
      "dropout_rng (ops), or set deterministic=True for evaluation."
    )


class InvalidRateError(FlaxenError, ValueError):
  """A dropout rate outside ``[0, 1]``."""

  def __init__(self, where: str, rate: object):
    super().__init__(
      f"{where}: dropout rate must lie in [0, 1], got {short_repr(rate)}. "
      "Fix: pass the probability of dropping an element, e.g. rate=0.1."
    )


class DecodeCacheError(FlaxenError, ValueError):
  """An autoregressive decode step does not fit the attention cache."""

  def __init__(self, where: str, expected: object, found: object):
    super().__init__(
      f"{where}: decode=True expects one token per step with query shape {expected}, "
      f"but got {found}. Fix: initialize the cache with an input of shape "
      "(batch..., max_length, features), then call with one position at a time."
    )


class EmptySequentialError(FlaxenError, ValueError):
  """``Sequential`` was called with no layers."""

  def __init__(self, where: str):
    super().__init__(
      f"{where} has no layers to call. Fix: pass a non-empty list, "
      "e.g. nn.Sequential([nn.Dense(8), nn.relu])."
    )


class AttentionInputsError(FlaxenError, ValueError):
  """An attention layer got ``inputs_v`` without ``inputs_k``, or both ``inputs_kv`` and them."""

  def __init__(self, where: str, reason: str):
    super().__init__(
      f"{where}: {reason}. Fix: pass inputs_q alone (self-attention), inputs_q and inputs_k "
      "(values default to the keys), or all of inputs_q, inputs_k and inputs_v."
    )


class CarryShapeError(FlaxenError, ValueError):
  """A recurrent cell got a carry whose shape does not fit its inputs and ``features``."""

  def __init__(self, where: str, expected: Iterable[int], found: Iterable[int],
               input_shape: Iterable[int]):
    super().__init__(
      f"{where}: expected a carry of shape {tuple(expected)} (the input's batch dims, then "
      f"features), but got {tuple(found)} for inputs of shape {tuple(input_shape)}. Fix: "
      "build the carry with cell.initialize_carry(rng, inputs.shape), or set the cell's "
      "features to the carry's size."
    )


class SeqLengthsError(FlaxenError, ValueError):
  """``seq_lengths`` of an RNN is not an integer array with one length per sequence."""

  def __init__(self, where: str, batch_shape: Iterable[int], found: str):
    super().__init__(
      f"{where}: seq_lengths must be an integer array of shape {tuple(batch_shape)} (one "
      f"length per sequence: the batch dims of the inputs), but got {found}. Fix: pass e.g. "
      "jnp.array([3, 5, ...], dtype=jnp.int32) with one entry per sequence of the batch."
    )


class MetricInputError(FlaxenError, ValueError):
  """A metric's ``update`` got keywords or arrays that do not fit it."""

  def __init__(self, where: str, reason: str):
    super().__init__(
      f"{where}.update: {reason}. Fix: pass the values under the metric's argname (e.g. "
      "update(values=...)); for Accuracy, logits of shape labels.shape + (num_classes,) and "
      "integer labels, or logits shaped like the labels with a threshold."
    )


class CacheNotInitializedError(FlaxenError, ValueError):
  """An attention layer was called with ``decode=True`` before its cache was created."""

  def __init__(self, where: str):
    super().__init__(
      f"{where}: decode=True needs the cache Variables, which do not exist yet. Fix: call "
      "layer.init_cache(input_shape) with the full-length input shape "
      "(batch..., max_length, features) before decoding."
    )


class EinsumSubscriptsError(FlaxenError, ValueError):
  """An einsum layer's subscripts are not one explicit two-operand string ``'in,kernel->out'``."""

  def __init__(self, where: str, subscripts: str, n_operands: int, has_arrow: bool):
    problem = (f"{n_operands} operand(s) instead of 2 (the input and the kernel)" if has_arrow
               else "no '->', so the output's labels are not given")
    super().__init__(
      f"{where}: einsum_str {subscripts!r} has {problem}. Fix: write both operands and the "
      "output explicitly, e.g. 'btd,dh->bth' or '...d,dh->...h'."
    )


class AxisCountError(FlaxenError, ValueError):
  """A layer got a different number of contracted ``axis`` than of ``in_features`` sizes."""

  def __init__(self, where: str, axis: tuple, in_features: tuple):
    super().__init__(
      f"{where}: axis={axis} names {len(axis)} input axis(es) but in_features={in_features} "
      f"gives {len(in_features)} size(s); each contracted axis needs its size. Fix: pass as "
      f"many sizes as axes, e.g. in_features={in_features[:1] * len(axis) or (8,)} with "
      f"axis={axis}, or axis={tuple(range(-len(in_features), 0))} for in_features="
      f"{in_features}."
    )


class AttentionEinsumError(FlaxenError, ValueError):
  """Attention's replacement einsums were given alone, or with ``precision`` /
  ``einsum_dot_general`` (which they would not see)."""

  def __init__(self, problem: str, fix: str):
    super().__init__(f"dot_product_attention: {problem}. Fix: {fix}.")
