"""nnx.tabulate, nnx.display and the readable reprs of graph objects."""

import sys
import types

import jax
import jax.numpy as jnp

from flaxen import nnx
from flaxen.nnx.summary import summarize
from flaxen.summary_table import flops_of

X = jnp.ones((16, 9))


class Block(nnx.Module):
  def __init__(self, rngs):
    self.lin = nnx.Linear(9, 4, rngs=rngs)
    self.bn = nnx.BatchNorm(4, rngs=rngs)

  def __call__(self, x):
    return nnx.relu(self.bn(self.lin(x)))


class Net(nnx.Module):
  def __init__(self, rngs):
    self.block = Block(rngs)
    self.out = nnx.Linear(4, 2, rngs=rngs)

  def __call__(self, x):
    return self.out(self.block(x))


def real_size(model, kind):
  leaves = jax.tree.leaves(nnx.state(model, kind))
  return sum(x.size for x in leaves), sum(x.size * x.dtype.itemsize for x in leaves)


def by_path(rows):
  return {"/".join(map(str, r.path)): r for r in rows}


def test_rows_and_totals_match_the_real_variables():
  model = Net(nnx.Rngs(0))
  rows, totals = summarize(model, X)
  assert [r.path for r in rows] == [(), ("block",), ("block", "lin"), ("block", "bn"), ("out",)]
  assert [r.module_type for r in rows] == ["Net", "Block", "Linear", "BatchNorm", "Linear"]
  assert [r.output.shape for r in rows] == [(16, 2), (16, 4), (16, 4), (16, 4), (16, 2)]
  assert list(totals) == ["Param", "BatchStat"]
  assert totals["Param"] == real_size(model, nnx.Param) == (58, 232)
  assert totals["BatchStat"] == real_size(model, nnx.BatchStat) == (8, 32)
  rows = by_path(rows)
  assert rows["block/lin"].counts["Param"] == real_size(model.block.lin, nnx.Param)
  assert rows["block/bn"].counts["BatchStat"] == (8, 32)
  assert set(rows["block/bn"].variables["BatchStat"]) == {"mean", "var"}
  assert rows["block"].counts == {}


def test_depth_folds_deeper_rows_and_model_is_untouched():
  model = Net(nnx.Rngs(0))
  mean = model.block.bn.mean.value
  call = nnx.Linear.__call__
  rows, totals = summarize(model, X, depth=1)
  assert [r.path for r in rows] == [(), ("block",), ("out",)]
  assert by_path(rows)["block"].counts == {"Param": real_size(model.block, nnx.Param),
                                           "BatchStat": (8, 32)}
  assert model.block.bn.mean.value is mean  # batch stats not updated, not abstract
  assert nnx.Linear.__call__ is call and "__call__" not in Net.__mro__[1].__dict__
  text = nnx.tabulate(model, X, depth=0)
  assert "block" not in text and text.splitlines()[-1].strip() == "Total Parameters: 66 (264 B)"


def test_flops_are_xlas_count():
  model = nnx.Linear(9, 4, rngs=nnx.Rngs(0))
  rows, _ = summarize(model, X, compute_flops=True, compute_vjp_flops=True)
  graphdef, state = nnx.split(model)
  expected = flops_of(lambda s, x: nnx.merge(graphdef, s)(x), state, X)
  assert rows[0].flops == expected
  assert 2 * 9 * 4 * 16 <= rows[0].flops <= 2 * 9 * 4 * 16 + 16 * 4
  assert rows[0].vjp_flops > rows[0].flops


def test_text_table():
  model = Net(nnx.Rngs(0))
  text = nnx.tabulate(model, X, compute_flops=True, console_kwargs={"width": 200})
  lines = text.splitlines()
  assert lines[0].strip() == "Net Summary"
  header = next(line for line in lines if "path" in line)
  for column in ("module", "inputs", "outputs", "flops", "Param", "BatchStat"):
    assert column in header
  assert "block/bn" in text and "kernel: float32[9,4]" in text and "mean: float32[4]" in text
  text = nnx.tabulate(model, X, row_filter=lambda row: row.module_type != "BatchNorm")
  assert "block/bn" not in text and "block/lin" in text and "Total Parameters: 66" in text


def test_rng_state_and_abstract_inputs():
  model = nnx.Dropout(0.5, rngs=nnx.Rngs(1))
  rows, totals = summarize(model, jax.ShapeDtypeStruct((2, 3), jnp.float32))
  assert rows[0].output.shape == (2, 3)
  assert totals == {"RngCount": (1, 4), "RngKey": (1, 8)}


def test_display_uses_treescope_in_a_notebook_else_text(monkeypatch, capsys):
  shown = []

  class ZMQInteractiveShell:
    pass

  fake_ipython = types.SimpleNamespace(get_ipython=ZMQInteractiveShell)
  monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
  monkeypatch.setitem(sys.modules, "treescope", types.SimpleNamespace(display=shown.append))
  model = nnx.Linear(300, 200, rngs=nnx.Rngs(0))
  nnx.display(model)
  assert shown == [model] and capsys.readouterr().out == ""

  monkeypatch.setitem(sys.modules, "treescope", None)  # not installed: import fails
  nnx.display(model, nnx.state(model))
  out = capsys.readouterr().out
  assert shown == [model]
  assert out.startswith("Linear(\n  bias=Param(value=Array(shape=(200,), dtype=float32)),")
  assert "kernel=Param(value=Array(shape=(300, 200), dtype=float32))" in out
  assert "State({\n  'bias':" in out


def test_reprs_are_cheap_and_indented():
  small = nnx.Param(jnp.zeros((2, 2)))
  assert repr(small) == "Param(value=Array(shape=(2, 2), dtype=float32))"
  assert repr(nnx.Param(jnp.arange(3))) == "Param(value=Array([0, 1, 2], dtype=int32))"
  graphdef, _ = nnx.split(Net(nnx.Rngs(0)))
  text = repr(graphdef)
  assert text.startswith("GraphDef(leaves=8, root=Net#0(\n  block=Block#1(\n    bn=BatchNorm#2(")
  assert "    kernel=Param#" in text
  rngs = repr(nnx.Rngs(0))
  assert "key=RngKey(value=Array(shape=(), dtype=key<fry>)" in rngs and "overlaying" not in rngs
