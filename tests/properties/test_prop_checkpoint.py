"""Checkpoints of arrays of random shapes, zero-size ones included: a save either
round-trips exactly (into the saved tree and with target=None) or, for an array without
elements, which orbax cannot store, raises UnsupportedCheckpointLeafError naming it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxen import checkpoint, errors

shapes = st.lists(st.integers(0, 2), max_size=3).map(tuple)


@settings(settings.get_profile("ci"), max_examples=12)  # a save costs tens of milliseconds
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), shapes, min_size=1), st.integers())
def test_arrays_of_any_shape_save_or_raise(tmp_path_factory, shape_of, seed):
  tree = {k: np.random.default_rng(seed % 2**32).normal(size=s).astype(np.float32)
          for k, s in shape_of.items()}
  path = tmp_path_factory.mktemp("ckpt") / "c"
  empty = sorted(k for k, x in tree.items() if x.size == 0)
  if empty:
    with pytest.raises(errors.UnsupportedCheckpointLeafError, match=f"'{empty[0]}'"):
      checkpoint.save(path, tree)
    assert not path.exists()
    return
  checkpoint.save(path, tree)
  for target in (tree, None):
    restored = checkpoint.restore(path, target)
    assert sorted(restored) == sorted(tree)
    for k, x in tree.items():
      np.testing.assert_array_equal(restored[k], x)
      assert restored[k].shape == x.shape and restored[k].dtype == x.dtype
