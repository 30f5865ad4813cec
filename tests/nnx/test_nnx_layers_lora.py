"""NNX LoRA and LoRALinear: params, metadata, and outputs against x @ a @ b (+ base)."""

import jax.numpy as jnp
import numpy as np

from flaxen import nnx

X = np.linspace(-1, 1, 2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)


def _shapes(module):
  return {"/".join(map(str, k)): v.value.shape for k, v in nnx.to_flat_state(nnx.state(module))}


def test_lora_and_lora_linear():
  lora = nnx.LoRA(3, 2, 4, rngs=nnx.Rngs(0))
  assert _shapes(lora) == {"lora_a": (3, 2), "lora_b": (2, 4)}
  assert not lora.lora_b.value.any()
  lora.lora_b.value = jnp.ones((2, 4))
  np.testing.assert_allclose(lora(X), X @ lora.lora_a.value @ lora.lora_b.value, rtol=1e-5)
  base = nnx.Linear(3, 4, rngs=nnx.Rngs(1))
  wrapped = nnx.LoRA(3, 2, 4, base_module=base, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(wrapped(X), base(X), rtol=1e-6)
  layer = nnx.LoRALinear(3, 4, lora_rank=2, rngs=nnx.Rngs(0))
  assert _shapes(layer) == {"kernel": (3, 4), "bias": (4,), "lora/lora_a": (3, 2),
                            "lora/lora_b": (2, 4)}
  layer.lora.lora_b.value = jnp.full((2, 4), 0.5)
  expected = X @ layer.kernel.value + layer.bias.value + X @ layer.lora.lora_a.value @ (
    layer.lora.lora_b.value)
  np.testing.assert_allclose(layer(X), expected, rtol=1e-5)
  tagged = nnx.LoRALinear(3, 4, lora_rank=2, a_metadata={"sharding": ("in", None)},
                         rngs=nnx.Rngs(0))
  assert tagged.lora.lora_a.sharding == ("in", None)
  lora_only = nnx.state(layer, nnx.LoRAParam)
  assert {k for k, _ in nnx.to_flat_state(lora_only)} == {("lora", "lora_a"), ("lora", "lora_b")}
