"""nnx.view / with_attributes / view_info: copies sharing Variables, attributes changed."""

import pytest

from flaxen import nnx


class Block(nnx.Module):
  def __init__(self):
    self.linear = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    self.dropout = nnx.Dropout(0.5, deterministic=False)
    self.bn = nnx.BatchNorm(3, use_running_average=False, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("graph", [True, False])
def test_with_attributes_copies_modules_and_shares_variables(graph):
  block = Block()
  new = nnx.with_attributes(block, deterministic=True, use_running_average=True, graph=graph)
  assert new.dropout.deterministic and new.bn.use_running_average
  assert not block.dropout.deterministic and not block.bn.use_running_average
  assert new.linear.kernel is block.linear.kernel and new.linear is not block.linear
  only = nnx.with_attributes(block, only=nnx.Dropout, deterministic=True,
                             use_running_average=True, raise_if_not_found=False, graph=graph)
  assert only.dropout.deterministic and not only.bn.use_running_average
  with pytest.raises(ValueError, match=r"attributes: \['unknown'\]"):
    nnx.with_attributes(block, unknown=1, graph=graph)
  nnx.with_attributes(block, unknown=1, raise_if_not_found=False, graph=graph)


@pytest.mark.parametrize("graph", [True, False])
def test_view_uses_set_view_and_reports_unused_keys(graph):
  class Custom(nnx.Module):
    def __init__(self):
      self.mode = "a"

    def set_view(self, mode: str | None = None, **kwargs) -> dict:
      """Sets the mode.

      Args:
        mode: the mode.
          Two lines.
      """
      if mode is not None:
        self.mode = mode
      return kwargs

  model = nnx.Sequential(Custom(), Block())
  new = nnx.view(model, mode="b", deterministic=True, graph=graph)
  assert new.layers[0].mode == "b" and model.layers[0].mode == "a"
  assert new.layers[1].dropout.deterministic
  with pytest.raises(ValueError, match=r"Unused keys found in nnx.view: \['nope'\]"):
    nnx.view(model, nope=1, graph=graph)
  info = nnx.view_info(model, graph=graph)
  assert info.startswith(
    "test_view_uses_set_view_and_reports_unused_keys.<locals>.Custom:\n"
    "  mode: str | None = None\n    the mode.\n    Two lines.")
  assert nnx.view_info(model, only=nnx.Linear, graph=graph) == ""
