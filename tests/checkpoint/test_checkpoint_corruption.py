"""A damaged checkpoint raises CheckpointCorruptedError and restores nothing."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxen import checkpoint, errors

# tensorstore may call back into orbax's event loop after it closed on the failed read;
# that background report is not an error of the code under test.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

TREE = {"params": {"kernel": jnp.arange(12.0).reshape(3, 4), "bias": np.ones(4, np.float32)},
        "step": 3}


def _files(path, pattern):
  return [f for f in path.glob(pattern) if f.is_file()]


def _garbage(files):
  for f in files:
    f.write_bytes(b"not a checkpoint" * 4)


def _flip_bytes(files):
  # Same size, different content: only checksums or decoding can notice.
  for f in files:
    data = bytearray(f.read_bytes())
    for i in range(len(data) // 4, len(data) - 4):
      data[i] ^= 0x5A
    f.write_bytes(bytes(data))


def _truncate(files):
  for f in files:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


DAMAGE = {
  "data_deleted": lambda p: shutil.rmtree(p / "d"),
  "data_garbage": lambda p: _garbage(_files(p, "d/*")),
  "data_flipped": lambda p: _flip_bytes(_files(p, "d/*")),
  "data_truncated": lambda p: _truncate(_files(p, "d/*")),
  "manifest_garbage": lambda p: _garbage([p / "manifest.ocdbt"]),
  "manifest_deleted": lambda p: (p / "manifest.ocdbt").unlink(),
  "tree_metadata_garbage": lambda p: _garbage([p / "_METADATA"]),
  "tree_metadata_deleted": lambda p: (p / "_METADATA").unlink(),
  "everything_truncated": lambda p: _truncate(_files(p, "**/*")),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("with_target", [True, False])
def test_damaged_checkpoint_raises_corrupted_error(tmp_path, damage, with_target):
  path = tmp_path / "ckpt"
  checkpoint.save(path, TREE)
  DAMAGE[damage](path)
  target = jax.eval_shape(lambda: TREE) if with_target else None
  with pytest.raises(errors.CheckpointCorruptedError, match=str(path)) as info:
    checkpoint.restore(path, target)
  assert isinstance(info.value, ValueError)
  assert "earlier checkpoint" in str(info.value)


def test_uncommitted_temporary_directory_is_refused(tmp_path):
  path = tmp_path / "ckpt"
  checkpoint.save(path, TREE)
  tmp = tmp_path / "ckpt.orbax-checkpoint-tmp-123"
  shutil.copytree(path, tmp)
  with pytest.raises(errors.CheckpointCorruptedError, match="uncommitted"):
    checkpoint.restore(tmp)


def test_undamaged_checkpoint_restores_after_failed_attempts(tmp_path):
  checkpoint.save(tmp_path / "bad", TREE)
  checkpoint.save(tmp_path / "good", TREE)
  _garbage(_files(tmp_path / "bad", "d/*"))
  with pytest.raises(errors.CheckpointCorruptedError):
    checkpoint.restore(tmp_path / "bad", TREE)
  restored = checkpoint.restore(tmp_path / "good", TREE)
  np.testing.assert_array_equal(restored["params"]["kernel"], TREE["params"]["kernel"])
