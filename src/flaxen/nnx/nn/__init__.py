"""NNX layers (``flaxen.nnx.nn``); each family lives in its own module and every public
name is re-exported by ``flaxen.nnx``."""

from flaxen.nnx.nn.activations import *  # noqa: F403
from flaxen.nnx.nn.activations import __all__ as _activations
from flaxen.nnx.nn.attention import (
  MultiHeadAttention,
  combine_masks,
  dot_product_attention,
  dot_product_attention_weights,
  make_attention_mask,
  make_causal_mask,
)
from flaxen.nnx.nn.conv import Conv, ConvTranspose
from flaxen.nnx.nn.linear import Einsum, Embed, Linear, LinearGeneral
from flaxen.nnx.nn.lora import LoRA, LoRALinear, LoRAParam
from flaxen.nnx.nn.normalization import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from flaxen.nnx.nn.recurrent import (
  RNN,
  Bidirectional,
  GRUCell,
  LSTMCell,
  OptimizedLSTMCell,
  RNNCellBase,
  SimpleCell,
)
from flaxen.nnx.nn.sequential import Sequential
from flaxen.nnx.nn.stochastic import Dropout
from flaxen.nnx.nn.weight_norm import SpectralNorm, WeightNorm
from flaxen.ops.pooling import avg_pool, max_pool, min_pool, pool
from flaxen.typing import Initializer

__all__ = [
  *_activations, "BatchNorm", "Conv", "ConvTranspose", "Dropout", "Einsum", "Embed",
  "GroupNorm", "InstanceNorm", "LayerNorm", "Linear", "LinearGeneral", "RMSNorm", "Sequential",
  "MultiHeadAttention", "combine_masks", "dot_product_attention", "dot_product_attention_weights",
  "make_attention_mask", "make_causal_mask", "LoRA", "LoRALinear", "LoRAParam", "RNN",
  "Bidirectional", "GRUCell", "LSTMCell", "OptimizedLSTMCell", "RNNCellBase", "SimpleCell",
  "avg_pool", "max_pool", "min_pool", "pool", "Initializer", "SpectralNorm", "WeightNorm",
]
