"""Checkpoints of Linen variables: restore into jax.eval_shape of init, mismatches named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flaxen.linen as nn
from flaxen import checkpoint, errors


class MLP(nn.Module):
  features: int = 4

  @nn.compact
  def __call__(self, x, train=False):
    x = nn.Dense(self.features)(x)
    x = nn.BatchNorm(use_running_average=not train)(x)
    return nn.Dense(2)(x)


X = jnp.ones((1, 3))


def test_variables_restore_into_abstract_init(tmp_path):
  variables = MLP().init(jax.random.key(0), X)
  checkpoint.save(tmp_path / "ckpt", variables)
  abstract = jax.eval_shape(lambda: MLP().init(jax.random.key(1), X))
  restored = checkpoint.restore(tmp_path / "ckpt", abstract)
  assert set(restored) == {"params", "batch_stats"}
  np.testing.assert_array_equal(MLP().apply(restored, X), MLP().apply(variables, X))


def test_wider_model_names_the_first_differing_kernel(tmp_path):
  checkpoint.save(tmp_path / "ckpt", MLP().init(jax.random.key(0), X))
  wider = jax.eval_shape(lambda: MLP(features=8).init(jax.random.key(0), X))
  with pytest.raises(errors.CheckpointMismatchError) as info:
    checkpoint.restore(tmp_path / "ckpt", wider)
  # batch_stats sorts first; its mean is the first leaf whose shape differs.
  assert info.value.path == "batch_stats/BatchNorm_0/mean"
  assert (info.value.expected, info.value.found) == ("float32[8]", "float32[4]")
  params_only = {"params": wider["params"]}
  with pytest.raises(errors.CheckpointMismatchError) as info:
    checkpoint.restore(tmp_path / "ckpt", params_only)
  assert info.value.path == "params/BatchNorm_0/bias"
