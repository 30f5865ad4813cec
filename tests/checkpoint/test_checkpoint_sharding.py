"""Restoring places arrays with the target's sharding (two CPU devices, in a subprocess)."""

import os
import subprocess
import sys

SCRIPT = """
import sys
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from flaxen import checkpoint

assert len(jax.devices()) == 2
mesh = Mesh(np.array(jax.devices()), ("data",))
row = NamedSharding(mesh, P("data"))
path = sys.argv[1]
w = jax.device_put(jnp.arange(8.0).reshape(4, 2), row)
checkpoint.save(path, {"w": w})

# Into a different sharding: replicated over both devices.
both = NamedSharding(mesh, P())
got = checkpoint.restore(path, {"w": jax.ShapeDtypeStruct((4, 2), jnp.float32, sharding=both)})
assert got["w"].sharding == both, got["w"].sharding
np.testing.assert_array_equal(got["w"], np.arange(8.0).reshape(4, 2))

# Into a concrete target: its sharding is kept.
got = checkpoint.restore(path, {"w": jax.device_put(jnp.zeros((4, 2)), row)})
assert got["w"].sharding == row

# Without a target: the default device.
got = checkpoint.restore(path)
assert got["w"].sharding.device_set == {jax.devices()[0]}
np.testing.assert_array_equal(got["w"], np.arange(8.0).reshape(4, 2))
print("ok")
"""


def test_restore_uses_target_shardings_across_devices(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  result = subprocess.run(
    [sys.executable, "-c", SCRIPT, str(tmp_path / "ckpt")],
    env=env, capture_output=True, text=True, timeout=120,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().endswith("ok")
