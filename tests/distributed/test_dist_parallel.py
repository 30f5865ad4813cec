"""Parallel training and sharded checkpoints on 8 simulated CPU devices.

One subprocess (tests/distributed/dist_parallel_checks.py) runs every check, sharing jax's
start-up and compilations; the test fails naming each failed check with its error:

- data, tensor (Megatron) and FSDP parallel train steps of a Linen Transformer on a 2x4
  mesh match the same steps on one device (losses and params), with params and optimizer
  state placed as the logical axis rules say; so do the NNX model's (tensor parallel; FSDP
  in the slow test; nnx.jit under jax.set_mesh), whose params are born in their shards;
- the tensor-parallel state, saved from the 2x4 mesh, restores onto a 4x2 mesh (where
  training resumes like the single-device run), onto one device, and through
  CheckpointManager into FSDP shardings: values unchanged, arrays in the target shardings.
"""

import pytest
from dist_harness import ROOT, run_checks

SCRIPT = ROOT / "tests" / "distributed" / "dist_parallel_checks.py"
FAST = [
  "reference", "nnx_reference", "check_data_parallel", "check_tensor_parallel", "check_fsdp",
  "check_nnx_tensor_parallel", "check_checkpoint_to_4x2_mesh_and_resume",
  "check_checkpoint_to_one_device", "check_manager_across_meshes",
]


def assert_all_ok(results, names):
  assert sorted(results) == sorted(names)
  failed = {name: error for name, error in results.items() if error != "ok"}
  assert not failed, "\n\n".join(f"{name}:\n{error}" for name, error in failed.items())


def test_parallel_layouts_match_one_device_and_checkpoints_reshard():
  assert_all_ok(run_checks(SCRIPT, *FAST, devices=8), FAST)


@pytest.mark.slow
def test_nnx_fsdp_matches_one_device():
  names = ["nnx_reference", "check_nnx_fsdp"]
  assert_all_ok(run_checks(SCRIPT, *names, devices=8), names)
