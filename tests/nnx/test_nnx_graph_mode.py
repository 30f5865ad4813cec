"""nnx.set_graph_mode / set_graph_updates: call, with block, decorator, config default."""

import threading

from flaxen import config, nnx
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.typing import BaseConfigContext


def test_default_follows_the_config_flag():
  assert nnx.set_graph_mode.current_value() is True
  config.update("nnx_graph_mode", False)
  try:
    assert nnx.set_graph_mode.current_value() is False
    assert resolve_graph(None) is False and resolve_graph(True) is True
  finally:
    config.update("nnx_graph_mode", True)


def test_with_block_restores_and_nests():
  with nnx.set_graph_updates(False):
    assert resolve_graph_updates(None) is False
    with nnx.set_graph_updates(True):
      assert nnx.set_graph_updates.current_value() is True
    assert nnx.set_graph_updates.current_value() is False
  assert nnx.set_graph_updates.current_value() is True


def test_decorator_applies_per_call_only():
  @nnx.set_graph_mode(False)
  def inside():
    return nnx.set_graph_mode.current_value()

  assert nnx.set_graph_mode.current_value() is True  # decorating pushed nothing
  assert inside() is False
  assert nnx.set_graph_mode.current_value() is True


def test_call_as_statement_sets_until_popped():
  ctx = nnx.set_graph_mode(False)
  try:
    assert nnx.set_graph_mode.current_value() is False
    assert nnx.set_graph_updates.current_value() is True  # separate stacks
  finally:
    ctx.__exit__(None, None, None)
  assert nnx.set_graph_mode.get_stack() == []


def test_stack_is_per_thread():
  seen = []
  with nnx.set_graph_mode(False):
    t = threading.Thread(target=lambda: seen.append(nnx.set_graph_mode.current_value()))
    t.start()
    t.join()
  assert seen == [True]
  assert issubclass(nnx.set_graph_mode, BaseConfigContext)
