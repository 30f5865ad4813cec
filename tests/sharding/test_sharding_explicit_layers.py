"""Dropout and grouped-query attention under an explicit-sharding mesh (4 simulated CPU
devices, one subprocess): outputs keep the inputs' sharding, values match the math."""

from sharding_subprocess import run_on_devices

SNIPPET = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, PartitionSpec as P, reshard
from flaxen import nnx

out = {}
mesh = jax.make_mesh((2, 2), ("X", "Y"), axis_types=(AxisType.Explicit,) * 2)
with jax.set_mesh(mesh):
  x = reshard(jnp.arange(1.0, 9.0).reshape(2, 4), P("X", None))
  for dims in [(), (1,)]:
    layer = nnx.Dropout(0.5, broadcast_dims=dims, rngs=nnx.Rngs(0))
    y = layer(x)
    jitted = jax.jit(lambda x, r: layer(x, rngs=r))(x, nnx.Rngs(1))
    kept = np.asarray(y) != 0
    out[f"dropout{dims}"] = [
      str(jax.typeof(y)), str(jax.typeof(jitted)),
      bool(np.allclose(np.asarray(y)[kept], 2 * np.asarray(x)[kept])),  # 1/keep_prob
      bool((kept == kept[:, :1]).all()) if dims else True,  # one mask value per row
    ]

  mesh = jax.make_mesh((2, 2), ("fsdp", "tp"), axis_types=(AxisType.Explicit,) * 2)
  inputs = jax.random.uniform(jax.random.key(0), (4, 5, 16))
  def mha(meta):
    return nnx.MultiHeadAttention(num_heads=4, in_features=16, qkv_features=8, num_kv_heads=2,
                                  decode=False, rngs=nnx.Rngs(0), **meta)
  plain = mha({})(inputs)
with jax.set_mesh(mesh):
  layer = mha(dict(kernel_metadata={"out_sharding": P("fsdp", "tp", None)},
                   out_kernel_metadata={"out_sharding": P("tp", None, "fsdp")}))
  y = layer(reshard(inputs, P("fsdp", None, "tp")), out_sharding=P("fsdp", None, "tp"),
            qkv_sharding=P("fsdp", None, "tp", None))
  out["mha"] = [str(jax.typeof(y)), float(np.abs(np.asarray(y) - np.asarray(plain)).max())]
emit(out)
"""


def test_dropout_and_gqa_attention_keep_explicit_shardings():
  out = run_on_devices(SNIPPET, n_devices=4)
  for dims in ["()", "(1,)"]:
    eager, jitted, scaled, broadcast = out[f"dropout{dims}"]
    assert "float32[2@X,4]" in eager and "float32[2@X,4]" in jitted
    assert scaled and broadcast
  typ, err = out["mha"]
  assert "float32[4@fsdp,5,16@tp]" in typ
  assert err < 1e-5  # the same parameters unsharded: float32 reduction order only
