"""``nnx.jit`` train steps in tree mode and graph mode against plain ``jax.jit``.

The models and reference of ``bench_nnx.py``: (a) the MLP with SGD and (b) 100 blocks of
Linear + BatchNorm with Adam. Tree mode (``graph=False`` on ``nnx.jit`` and
``nnx.value_and_grad``) is what Flax's "Tree Mode NNX" programs run: Modules as pytrees, the
gradients a Module. Graph mode (with graph updates) is timed in the same process, so the
two rows compare directly. Both take the same cached call path (one read and one write per
Variable), so the difference between them is the traced program, not Python.
"""

from __future__ import annotations

import optax

from benchmarks.bench_nnx import MLP, Blocks, mse, reference_setup
from benchmarks.timing import Result, compare
from flaxen import nnx


def make_step(graph: bool):
  def step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(lambda m: mse(m(x), y), graph=graph)(model)
    optimizer.update(model, grads)
    return loss
  return nnx.jit(step, graph=graph)


def rows(label: str, model_cls, tx, with_stats: bool) -> list[Result]:
  x, y, ref_call = reference_setup(model_cls, tx, with_stats)

  out = []
  for graph, name, target in ((True, "graph mode", 1.1), (False, "tree mode", 1.05)):
    model = model_cls(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param, graph=graph)
    step = make_step(graph)
    out.append(compare(f"step: {label}, nnx.jit {name}",
                       lambda s=step, m=model, o=optimizer: s(m, o, x, y), ref_call,
                       target=target, unit="per step", notes=f"issue 14 target {target}x"))
  return out


def run() -> list[Result]:
  return [
    *rows("(a) MLP 16-32-32-4, SGD", MLP, optax.sgd(0.1), with_stats=False),
    *rows("(b) 100x(Linear+BatchNorm), Adam", Blocks, optax.adam(1e-3), with_stats=True),
  ]
