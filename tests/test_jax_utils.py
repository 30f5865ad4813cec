"""jax_utils: replicate/unreplicate, pmap helpers on 4 simulated CPU devices (a subprocess),
and scan_in_dim, partial_eval_by_shape, pmean on the test process's device."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import jax_utils

# Runs with 4 CPU devices; flaxen's DeprecationWarnings are errors there too.
FOUR_DEVICES = textwrap.dedent("""
  import json, warnings
  warnings.filterwarnings("error", category=DeprecationWarning, module="flaxen")
  import jax, jax.numpy as jnp, numpy as np
  from flaxen import jax_utils
  from flaxen.training import common_utils

  out = {"devices": jax.local_device_count()}
  tree = {"w": jnp.arange(6.0).reshape(2, 3), "n": np.int32(7), "v": np.ones(2, np.float16)}
  rep = jax_utils.replicate(tree)
  out["shapes"] = {k: list(v.shape) for k, v in rep.items()}
  out["placed"] = [[s.device.id for s in v.addressable_shards] for v in rep.values()]
  out["rows"] = all(bool((np.asarray(v)[i] == np.asarray(tree[k])).all())
                    for k, v in rep.items() for i in range(4))
  un = jax_utils.unreplicate(rep)
  out["round_trip"] = all(bool((np.asarray(un[k]) == np.asarray(tree[k])).all())
                          and np.asarray(un[k]).dtype == np.asarray(tree[k]).dtype
                          for k in tree)
  step = jax.pmap(lambda p, x: (p["w"].sum() * x).sum(), axis_name="d")
  per_device = step(rep, common_utils.shard(np.arange(8.0)))
  out["pmap"] = np.asarray(per_device).tolist()
  out["unreplicate_pmap_output"] = float(jax_utils.unreplicate(per_device))
  f = jax_utils.pad_shard_unpad(jax.pmap(lambda w, x: x * w, in_axes=(None, 0)))
  out["pad"] = np.asarray(f(2.0, np.arange(6.0))).tolist()
  out["pad_min"] = np.asarray(f(3.0, np.arange(3.0), min_device_batch=2)).tolist()
  items = [{"x": np.full((4, 2), i, np.float32)} for i in range(3)]
  got = list(jax_utils.prefetch_to_device(iter(items), 2))
  out["prefetch"] = [[float(np.asarray(s.data).sum()) for s in it["x"].addressable_shards]
                     for it in got]
  from flaxen.training.dynamic_scale import DynamicScale
  ds = jax_utils.replicate(DynamicScale(scale=4.0))
  scaled = jax.pmap(lambda ds, x: ds.value_and_grad(lambda w: w * x, axis_name="d")(1.0),
                    axis_name="d")
  _, finite, _, grad = scaled(ds, jnp.arange(4.0))
  out["ds_pmean"] = [np.asarray(grad).tolist(), np.asarray(finite).tolist()]
  print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def four_devices():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=4")
  proc = subprocess.run([sys.executable, "-c", FOUR_DEVICES], env=env, capture_output=True,
                        text=True, timeout=240)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert lines, proc.stderr[-3000:]
  return json.loads(lines[0][len("RESULT "):])


def test_replicate_unreplicate_round_trip_on_4_devices(four_devices):
  assert four_devices["devices"] == 4
  assert four_devices["shapes"] == {"w": [4, 2, 3], "n": [4], "v": [4, 2]}
  assert four_devices["placed"] == [[0, 1, 2, 3]] * 3  # row i on device i
  assert four_devices["rows"] and four_devices["round_trip"]


def test_pmap_step_on_replicated_params(four_devices):
  # sum(w) = 15; device i gets x = [2i, 2i+1]: 15 * (4i + 1)
  assert four_devices["pmap"] == [15.0 * (4 * i + 1) for i in range(4)]
  assert four_devices["unreplicate_pmap_output"] == 15.0


def test_pad_shard_unpad_on_4_devices(four_devices):
  assert four_devices["pad"] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]  # 6 rows padded to 8
  assert four_devices["pad_min"] == [0.0, 3.0, 6.0]


def test_prefetch_to_device_keeps_order_and_splits_rows(four_devices):
  # item i is a (4, 2) array of i: each device holds one row, summing to 2i
  assert four_devices["prefetch"] == [[2.0 * i] * 4 for i in range(3)]


def test_dynamic_scale_averages_grads_over_the_pmap_axis(four_devices):
  # device i's gradient of w * i is i; with axis_name every device gets their mean, 1.5
  assert four_devices["ds_pmean"] == [[1.5] * 4, [True] * 4]


def test_unreplicate_on_one_device():
  rep = jax_utils.replicate({"a": jnp.arange(3.0)})
  assert rep["a"].shape == (jax.local_device_count(), 3)
  np.testing.assert_array_equal(jax_utils.unreplicate(rep)["a"], np.arange(3.0))


def test_pmean_is_deprecated_and_averages():
  with pytest.warns(DeprecationWarning, match="jax.lax.pmean"):
    got = jax.vmap(lambda v: jax_utils.pmean(v, "i"), axis_name="i")(jnp.arange(4.0))
  np.testing.assert_allclose(got, np.full(4, 1.5))


def cumsum_body(carry, x):
  carry = carry + x
  return carry, carry * 2


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_scan_in_dim_one_axis_matches_numpy(axis):
  xs = np.arange(24.0).reshape(2, 3, 4)
  init = np.zeros(np.delete(xs.shape, axis))
  carry, ys = jax_utils.scan_in_dim(cumsum_body, init, xs, axis=axis)
  np.testing.assert_allclose(carry, xs.sum(axis))
  np.testing.assert_allclose(ys, 2 * np.cumsum(xs, axis))


def test_scan_in_dim_two_axes_and_keepdims():
  xs = np.arange(24.0).reshape(2, 3, 4)
  # scanning axes (2, 0) visits x[:, :, 0] rows ... in the order of the transposed array
  carry, ys = jax_utils.scan_in_dim(cumsum_body, np.zeros(3), xs, axis=(2, 0), unroll=2)
  order = np.transpose(xs, (2, 0, 1)).reshape(8, 3)
  np.testing.assert_allclose(carry, order.sum(0))
  want = np.transpose((2 * np.cumsum(order, 0)).reshape(4, 2, 3), (1, 2, 0))
  np.testing.assert_allclose(ys, want)
  seen = []

  def keep(carry, x):
    seen.append(x.shape)
    return carry + x, x

  carry, ys = jax_utils.scan_in_dim(keep, np.zeros((1, 4)), xs[0], axis=0, keepdims=True)
  assert seen == [(1, 4)]
  np.testing.assert_allclose(carry, xs[0].sum(0, keepdims=True))
  np.testing.assert_allclose(ys, xs[0])


def test_partial_eval_by_shape_evaluates_what_does_not_read_the_inputs():
  def fn(x, scale):
    return {"known": jnp.arange(3.0) * scale, "shape_only": x @ jnp.ones((4, 2)),
            "ones": jnp.ones_like(x)}

  out = jax_utils.partial_eval_by_shape(fn, [((5, 4), jnp.float32)], 2.0)
  np.testing.assert_array_equal(out["known"], [0.0, 2.0, 4.0])
  assert out["shape_only"] == jax.ShapeDtypeStruct((5, 2), jnp.float32)
  # ones_like reads only the input's shape, which is known: its value comes back
  np.testing.assert_array_equal(out["ones"], np.ones((5, 4)))
  out = jax_utils.partial_eval_by_shape(lambda x: x + 1, [(3,)])  # bare shape: float32
  assert out == jax.ShapeDtypeStruct((3,), jnp.float32)
