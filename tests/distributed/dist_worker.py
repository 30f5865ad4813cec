"""One of the two processes of test_dist_multiprocess.py's data-parallel run.

Usage: ``python dist_worker.py <process id> <coordinator port> <output dir>`` with 4
simulated CPU devices. The two processes form one 8-device mesh over the loopback
interface (gloo collectives), each feeds its half of every global batch, and after
``STEPS`` steps each writes its losses and params to ``<output dir>/process<id>.npz``;
together they save the train state to ``<output dir>/checkpoint``.
"""

import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from dist_harness import load_example  # this folder is sys.path[0] in the script

from flaxen import checkpoint
from flaxen.core import meta

STEPS = 3
PROCESSES = 2


def example():
  # Loaded only when needed: in a worker, after jax.distributed.initialize (importing
  # flaxen.nnx currently starts the XLA backend, after which initialize refuses to run).
  return load_example("sharding", "train.py")


def setup():
  """The model, optimizer, key and global batches every run (one process or two) shares."""
  ex = example()
  model = ex.Transformer(vocab=16, context=8, dim=16, heads=4, layers=1)
  data = ex.batches(16, 8, 8, seed=2)
  tx = optax.sgd(0.1, momentum=0.9)  # linear in the gradient: rounding stays small
  return model, tx, jax.random.key(0), [next(data) for _ in range(STEPS)]


def single_process():
  """Losses and state after the same steps with plain jax.jit on this process's device."""
  ex, (model, tx, key, batches) = example(), setup()
  state = jax.jit(lambda k: ex.create_state(model, tx, k))(key)
  step = jax.jit(ex.train_step)
  losses = []
  for seqs in batches:
    state, loss = step(state, seqs)
    losses.append(float(loss))
  return losses, state


def flat(params) -> dict[str, Any]:
  """The leaves of a params tree by their key paths."""
  return {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}


def main(process_id: int, port: int, out: Path) -> None:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=PROCESSES,
                             process_id=process_id, initialization_timeout=60)
  try:
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 8, 4)
    ex, (model, tx, key, batches) = example(), setup()
    axes, rules = ex.STYLES["dp"]
    # Rows of the mesh are processes: jax.devices() lists process 0's devices first.
    mesh = jax.make_mesh((PROCESSES, 4), axes, axis_types=(jax.sharding.AxisType.Auto,) * 2)
    run = ex.parallelize(model, tx, key, mesh, rules)
    state, losses, rows = run.state, [], len(batches[0]) // PROCESSES
    for seqs in batches:
      local = seqs[process_id * rows:(process_id + 1) * rows]  # this process's share
      batch = jax.make_array_from_process_local_data(run.data_sharding, local, seqs.shape)
      state, loss = run.step(state, batch)
      losses.append(float(loss))  # replicated: every process holds the whole value
    params = meta.unbox(state.params)
    assert all(x.is_fully_replicated for x in jax.tree.leaves(params))
    host = {k: np.asarray(x.addressable_data(0)) for k, x in flat(params).items()}
    np.savez(out / f"process{process_id}.npz", losses=np.array(losses), **host)
    checkpoint.save(out / "checkpoint", state)  # every process takes part in the save
  finally:
    jax.distributed.shutdown()


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
