"""nn.tabulate / Module.tabulate: rows, per-collection counts and bytes, depth, FLOPs."""

import jax
import jax.numpy as jnp
import numpy as np

import flaxen.linen as nn
from flaxen.linen.summary import summarize
from flaxen.summary_table import flops_of

KEY = jax.random.key(0)
X = jnp.ones((16, 9))


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.Dense(4)(x))
    return nn.Dense(2)(h)


class Block(nn.Module):
  @nn.compact
  def __call__(self, x, train=True):
    x = nn.Dense(4)(x)
    return nn.BatchNorm(use_running_average=not train)(x)


class Net(nn.Module):
  @nn.compact
  def __call__(self, x, train=True):
    return nn.Dense(3)(Block()(x, train))


def real_size(tree):
  leaves = jax.tree.leaves(tree)
  return sum(x.size for x in leaves), sum(x.size * x.dtype.itemsize for x in leaves)


def by_path(rows):
  return {"/".join(r.path): r for r in rows}


def test_mlp_rows_match_the_real_variables():
  variables = MLP().init(KEY, X)
  rows, totals = summarize(MLP(), KEY, X)
  assert [r.path for r in rows] == [(), ("Dense_0",), ("Dense_1",)]
  assert [r.module_type for r in rows] == ["MLP", "Dense", "Dense"]
  assert [r.args[0].shape for r in rows] == [(16, 9), (16, 9), (16, 4)]
  assert [r.output.shape for r in rows] == [(16, 2), (16, 4), (16, 2)]
  for name in ("Dense_0", "Dense_1"):
    assert by_path(rows)[name].counts["params"] == real_size(variables["params"][name])
    assert set(by_path(rows)[name].variables["params"]) == {"kernel", "bias"}
  assert rows[0].counts == {}
  assert totals == {"params": real_size(variables["params"])} == {"params": (50, 200)}


def test_batch_stats_are_a_column_of_their_own():
  variables = Net().init(KEY, X)
  rows, totals = summarize(Net(), KEY, X)
  assert list(totals) == ["params", "batch_stats"]
  for col in totals:
    assert totals[col] == real_size(variables[col])
  bn = by_path(rows)["Block_0/BatchNorm_0"]
  assert bn.counts["batch_stats"] == real_size(variables["batch_stats"]["Block_0"]) == (8, 32)
  assert set(bn.variables["batch_stats"]) == {"mean", "var"}
  # every variable is counted exactly once over the rows
  for col in totals:
    counted = [r.counts[col] for r in rows if col in r.counts]
    assert (sum(c[0] for c in counted), sum(c[1] for c in counted)) == totals[col]


def test_depth_folds_deeper_rows_into_their_ancestor():
  variables = Net().init(KEY, X)
  rows, totals = summarize(Net(), KEY, X, depth=1)
  assert [r.path for r in rows] == [(), ("Block_0",), ("Dense_0",)]
  block = by_path(rows)["Block_0"]
  assert block.counts["params"] == real_size(variables["params"]["Block_0"]) == (48, 192)
  assert block.counts["batch_stats"] == (8, 32)
  assert totals["params"] == real_size(variables["params"])
  text = Net().tabulate(KEY, X, depth=0)
  assert "Block_0" not in text and "Total Parameters: 71 (284 B)" in text


def test_repeated_calls_are_shown_on_request():
  class Twice(nn.Module):
    def setup(self):
      self.dense = nn.Dense(9)

    def __call__(self, x):
      return self.dense(self.dense(x))

  paths = [r.path for r in summarize(Twice(), KEY, X)[0]]
  assert paths == [(), ("dense",)]
  rows, totals = summarize(Twice(), KEY, X, show_repeated=True)
  assert [r.path for r in rows] == [(), ("dense",), ("dense",)]
  assert rows[2].counts == {} and totals["params"] == (90, 360)  # counted once


def test_flops_are_xlas_count():
  dense = nn.Dense(4)
  rows, _ = summarize(dense, KEY, X, compute_flops=True, compute_vjp_flops=True)
  variables = dense.init(KEY, X)
  expected = flops_of(lambda v, x: dense.apply(v, x), variables, X)
  assert rows[0].flops == expected
  assert 2 * 9 * 4 * 16 <= rows[0].flops <= 2 * 9 * 4 * 16 + 16 * 4  # matmul + bias
  assert rows[0].vjp_flops > rows[0].flops
  rows, _ = summarize(MLP(), KEY, X, compute_flops=True)
  assert all(r.flops > 0 for r in rows)


def test_text_table_and_function_form():
  text = nn.tabulate(Net(), KEY, compute_flops=True, console_kwargs={"width": 200})(X,
                                                                                     train=False)
  lines = text.splitlines()
  assert lines[0].strip() == "Net Summary"
  header = next(line for line in lines if "path" in line)
  for column in ("module", "inputs", "outputs", "flops", "params", "batch_stats"):
    assert column in header
  assert "train: False" in text and "float32[16,9]" in text
  assert "kernel: float32[9,4]" in text and "mean: float32[4]" in text
  assert lines[-1].strip() == "Total Parameters: 71 (284 B)"


def test_abstract_inputs_and_other_methods():
  class AutoEncoder(nn.Module):
    def setup(self):
      self.enc = nn.Dense(2)
      self.dec = nn.Dense(9)

    def encode(self, x):
      return self.enc(x)

    def __call__(self, x):
      return self.dec(self.encode(x))

  rows, totals = summarize(AutoEncoder(), KEY, jax.ShapeDtypeStruct((4, 9), jnp.float32),
                           method="encode")
  assert [(r.path, r.module_type) for r in rows] == [((), "AutoEncoder.encode"),
                                                      (("enc",), "Dense")]
  assert rows[-1].output.shape == (4, 2)
  assert totals["params"] == (20, 80)


def test_no_real_computation_and_values_not_read():
  calls = []

  class Probe(nn.Module):
    @nn.compact
    def __call__(self, x):
      calls.append(isinstance(x, jax.core.Tracer))
      return nn.Dense(2)(x)

  Probe().tabulate(KEY, np.ones((3, 5), np.float32))
  assert calls == [True]


def test_boxed_params_show_their_shape():
  init = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
  text = nn.Dense(3, kernel_init=init).tabulate(KEY, jnp.ones((2, 4)))
  assert "kernel: Partitioned(float32[4,3], names=(None, 'model'))" in text
  assert "Total Parameters: 15 (60 B)" in text


def test_private_helper_methods_are_not_rows():
  import jax
  import jax.numpy as jnp

  import flaxen.linen as nn

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Conv(4, (3, 3))(x)

  table = Net().tabulate(jax.random.key(0), jnp.ones((1, 8, 8, 1)))
  assert "Conv" in table
  assert "_kernel_size" not in table and "_params" not in table


def test_flax_row_and_table_types():
  import numpy as np

  from flaxen.linen import summary

  row = summary.Row(("a",), nn.Dense(2), "__call__", (np.ones(3),), np.ones(2),
                    {"params": {"kernel": np.ones((3, 2))}},
                    {"params": {"kernel": np.ones((3, 2), np.float32), "bias": np.ones(2)}})
  assert row.size_and_bytes(["params"]) == {"params": (8, 6 * 4 + 2 * 8)}
  table = summary.Table(nn.Dense(2), ("params",), [row])
  assert table[0] is row and table.collections == ["params"]


def test_module_paths_lists_unbound_copies():
  class Bar(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(4)(nn.Dense(3)(x))  # Dense(4) is built first: Dense_0

  class Foo(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(5)(Bar()(x))

  paths = Foo().module_paths(jax.random.key(0), jnp.ones((1, 2)))
  assert sorted(paths) == ["", "Bar_0", "Bar_0/Dense_0", "Bar_0/Dense_1", "Dense_0"]
  assert type(paths[""]) is Foo and type(paths["Bar_0"]) is Bar
  assert paths["Bar_0/Dense_1"].features == 3 and all(m.scope is None for m in paths.values())
