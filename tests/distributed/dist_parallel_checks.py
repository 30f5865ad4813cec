"""Checks on 8 simulated CPU devices, run as a script by tests/distributed/test_dist_*.py.

Usage: ``python dist_parallel_checks.py [check names]`` (default: all of them).

The example's Transformer (examples/sharding/train.py) takes 3 SGD steps on one device;
the same steps in data-parallel, tensor-parallel and FSDP layouts on a 2x4 mesh must give
the same losses and params; so must the NNX version of the model (tensor parallel and
FSDP), whose params are also checked to be born in their shards. Then the Linen
tensor-parallel state is checkpointed and restored onto a 4x2 mesh and onto one device,
and training resumes on the 4x2 mesh.
"""

import itertools
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np
import optax
from dist_harness import load_example, report  # this folder is sys.path[0] in the script
from jax.sharding import AxisType, NamedSharding, make_single_device_sharding
from jax.sharding import PartitionSpec as P

import flaxen.linen as nn
from flaxen import checkpoint, nnx
from flaxen.core import meta

ex = load_example("sharding", "train.py")
MODEL = ex.Transformer(vocab=16, context=8, dim=16, heads=4, layers=1)
# SGD: its update is linear in the gradient, so rounding noise stays noise-sized. (adam
# would scale the pure-noise gradient of the attention key bias, which is exactly zero in
# exact arithmetic, up to full-size steps of random sign.)
TX = optax.sgd(0.1, momentum=0.9)
KEY = jax.random.key(0)
BATCHES = list(itertools.islice(ex.batches(16, 8, 8, seed=1), 4))
STEPS = 3  # on each layout; the 4th batch is for the run resumed from a checkpoint
# Reductions run in another order when split across devices: float32 rounding only.
TOL = dict(rtol=2e-5, atol=2e-6)
done: dict = {}  # what checks leave for later checks


def mesh(shape, axes):
  return jax.make_mesh(shape, axes, axis_types=(AxisType.Auto,) * len(axes))


def host(tree):
  return jax.tree.map(np.asarray, meta.unbox(tree))


def reference():
  """Losses and params of all 4 steps on one device, with plain jax.jit."""
  state = jax.jit(lambda key: ex.create_state(MODEL, TX, key))(KEY)
  step = jax.jit(ex.train_step)
  losses, params = [], []
  for seqs in BATCHES:
    state, loss = step(state, seqs)
    losses.append(float(loss))
    params.append(host(state.params))
  done["reference"] = losses, params


def assert_params_close(got, want):
  flat = jax.tree_util.tree_flatten_with_path(got)[0]
  for (path, a), b in zip(flat, jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, **TOL, err_msg=jax.tree_util.keystr(path))


def train(style, shape=(2, 4)):
  axes, rules = ex.STYLES[style]
  run = ex.parallelize(MODEL, TX, KEY, mesh(shape, axes), rules)
  state, losses = run.state, []
  for seqs in BATCHES[:STEPS]:
    state, loss = run.step(state, jax.device_put(seqs, run.data_sharding))
    losses.append(float(loss))
  ref_losses, ref_params = done["reference"]
  np.testing.assert_allclose(losses, ref_losses[:STEPS], **TOL)
  assert_params_close(host(state.params), ref_params[STEPS - 1])
  return run, state


def param(state, *path):
  box = state.params
  for key in path:
    box = box[key]
  return box.value


def shard_shape(x):
  return x.addressable_shards[0].data.shape


def check_data_parallel():
  run, state = train("dp")
  kernel = param(state, "Block_0", "Dense_0", "kernel")
  assert kernel.sharding.spec == P(None, None) and shard_shape(kernel) == (16, 64)
  assert run.data_sharding.spec == P(("data", "model"), None)  # 8 sequences, 1 per device


def check_tensor_parallel():
  run, state = train("tp")
  attn = ("Block_0", "SelfAttention_0")
  # Megatron: q/k/v and the MLP's first layer split their outputs over `model` (4 heads,
  # 64 hidden units); the output projections split their inputs; the rest is replicated.
  for path, spec, shape in [
    ((*attn, "query", "kernel"), P(None, "model", None), (16, 1, 4)),
    ((*attn, "value", "bias"), P("model", None), (1, 4)),
    ((*attn, "out", "kernel"), P("model", None, None), (1, 4, 16)),
    (("Block_0", "Dense_0", "kernel"), P(None, "model"), (16, 16)),
    (("Block_0", "Dense_1", "kernel"), P("model", None), (16, 16)),
    (("Embed_0", "embedding"), P(None, None), (16, 16)),
  ]:
    x = param(state, *path)
    assert (x.sharding.spec, shard_shape(x)) == (spec, shape), (path, x.sharding)
  mu = state.opt_state[0].trace["Block_0"]["Dense_0"]["kernel"].value  # momentum
  assert mu.sharding.spec == P(None, "model"), mu.sharding  # optimizer state follows params
  done["tp"] = run, state


def check_fsdp():
  _, state = train("fsdp")
  for path, spec, shape in [
    (("Embed_0", "embedding"), P(None, "fsdp"), (16, 4)),
    (("Block_0", "Dense_0", "kernel"), P("fsdp", None), (4, 64)),
    (("Block_0", "SelfAttention_0", "out", "kernel"), P(None, None, "fsdp"), (4, 4, 4)),
    (("LayerNorm_0", "scale"), P("fsdp"), (4,)),
  ]:
    x = param(state, *path)
    assert (x.sharding.spec, shard_shape(x)) == (spec, shape), (path, x.sharding)


def nnx_model():
  return ex.NnxTransformer(16, 8, dim=16, heads=4, layers=1, rngs=nnx.Rngs(0))


def nnx_params(model):
  return jax.tree.map(np.asarray, nnx.state(model, nnx.Param).to_pure_dict())


def nnx_reference():
  """The NNX model's losses and params after STEPS steps on one device."""
  model = nnx_model()
  optimizer = nnx.Optimizer(model, TX, wrt=nnx.Param)
  losses = [float(ex.nnx_train_step(model, optimizer, seqs)) for seqs in BATCHES[:STEPS]]
  done["nnx_reference"] = losses, nnx_params(model)


def nnx_train(style, expected):
  """STEPS steps of ``style`` on a 2x4 mesh: params born and kept where ``expected`` says
  ({path: (spec, shard shape)}), losses and params as on one device."""
  axes, rules = ex.STYLES[style]
  run = ex.nnx_parallelize(nnx_model, TX, mesh((2, 4), axes), rules)

  def check_layout(when):
    for path, (spec, shape) in expected.items():
      x = nnx_at(run.model, path)
      want = NamedSharding(run.mesh, spec)
      assert x.sharding.is_equivalent_to(want, x.ndim), (when, path, x.sharding)
      assert shard_shape(x) == shape, (when, path, shard_shape(x))

  check_layout("after creation")
  losses = [float(run.step(jax.device_put(seqs, run.data_sharding))) for seqs in
            BATCHES[:STEPS]]
  check_layout("after training")
  ref_losses, ref_params = done["nnx_reference"]
  np.testing.assert_allclose(losses, ref_losses, **TOL)
  assert_params_close(nnx_params(run.model), ref_params)


def nnx_at(model, path):
  for key in path:
    model = model[key] if isinstance(key, int) else getattr(model, key)
  return model.value


def check_nnx_tensor_parallel():
  nnx_train("tp", {
    ("blocks", 0, "attn", "query", "kernel"): (P(None, "model", None), (16, 1, 4)),
    ("blocks", 0, "attn", "out", "kernel"): (P("model", None, None), (1, 4, 16)),
    ("blocks", 0, "up", "kernel"): (P(None, "model"), (16, 16)),
    ("blocks", 0, "down", "kernel"): (P("model", None), (16, 16)),
    ("embed", "embedding"): (P(), (16, 16)),
  })


def check_nnx_fsdp():
  nnx_train("fsdp", {
    ("embed", "embedding"): (P(None, "fsdp"), (16, 4)),
    ("blocks", 0, "up", "kernel"): (P("fsdp", None), (4, 64)),
    ("pos",): (P(None, "fsdp"), (8, 4)),
  })


def abstract_state(shardings):
  """The state's shapes and dtypes, each leaf placed as ``shardings`` says."""
  abstract = jax.eval_shape(lambda key: ex.create_state(MODEL, TX, key), KEY)
  leaves, treedef = jax.tree.flatten(abstract)
  placed = [jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)
            for x, s in zip(leaves, jax.tree.leaves(shardings), strict=True)]
  return treedef.unflatten(placed)


def assert_restored(got, want, target):
  for a, b, t in zip(jax.tree.leaves(got), jax.tree.leaves(want), jax.tree.leaves(target),
                     strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert a.sharding == t.sharding, (a.sharding, t.sharding)


def check_checkpoint_to_4x2_mesh_and_resume():
  _, state = done["tp"]
  path = Path(tempfile.mkdtemp()) / "tp"
  checkpoint.save(path, state)
  done["checkpoint"] = path
  axes, rules = ex.STYLES["tp"]
  run = ex.parallelize(MODEL, TX, KEY, mesh((4, 2), axes), rules)
  target = abstract_state(run.shardings)
  restored = checkpoint.restore(path, target)
  assert_restored(restored, state, target)
  kernel = param(restored, "Block_0", "Dense_0", "kernel")
  assert shard_shape(kernel) == (16, 32)  # 64 hidden units over a `model` axis of 2
  # Resuming on the new mesh continues the single-device run.
  restored, loss = run.step(restored, jax.device_put(BATCHES[STEPS], run.data_sharding))
  ref_losses, ref_params = done["reference"]
  np.testing.assert_allclose(float(loss), ref_losses[STEPS], **TOL)
  assert_params_close(host(restored.params), ref_params[STEPS])


def check_checkpoint_to_one_device():
  _, state = done["tp"]
  device = make_single_device_sharding(jax.devices()[3])
  target = abstract_state(jax.tree.map(lambda _: device, meta.unbox(state)))
  restored = checkpoint.restore(done["checkpoint"], target)
  assert_restored(restored, state, target)


def check_manager_across_meshes():
  _, state = done["tp"]
  axes, rules = ex.STYLES["fsdp"]
  fsdp = mesh((4, 2), axes)
  with checkpoint.CheckpointManager(Path(tempfile.mkdtemp()), max_to_keep=1) as mngr:
    mngr.save(STEPS, state)
    shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(state), fsdp, rules)
    target = abstract_state(shardings)
    restored = mngr.restore(target=target)
  assert_restored(restored, state, target)
  assert param(restored, "Embed_0", "embedding").sharding.spec == P(None, "fsdp")


if __name__ == "__main__":
  assert jax.device_count() == 8, jax.devices()
  checks = [(n, f) for n, f in globals().items() if n.startswith("check_")]
  report({"reference": reference, "nnx_reference": nnx_reference, **dict(checks)}, sys.argv[1:])
