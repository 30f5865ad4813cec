"""flaxen example: a small Transformer trained on 8 devices with data and tensor parallelism.

The params of a Linen decoder-only Transformer carry *logical* axis names ("embed", "mlp",
"heads", ...) through ``nn.with_logical_partitioning``; a table of rules maps them to the
axes of a 2x4 device mesh. The default ``--parallel tp`` splits the batch over the mesh's
``data`` axis and the attention heads and MLP hidden units over its ``model`` axis
(Megatron-style); ``dp`` replicates the params and splits the batch over all 8 devices;
``fsdp`` splits the batch over both axes and each param's ``embed`` dimension over the
``fsdp`` axis. ``jax.jit`` gets the resulting shardings as ``in_shardings`` /
``out_shardings``. The model learns to continue arithmetic sequences ``a, a+b, a+2b, ...``
(mod the vocabulary size); the script prints the mesh, each param's sharding and the loss.
``--api nnx`` trains the same model written with NNX (``nnx.with_partitioning`` and Param
metadata): model and optimizer are created inside ``nnx.jit`` under the mesh and the rules,
so each Param is born in its shards, and the ``nnx.jit`` step follows the inputs' shardings.

Run as a script it simulates 8 CPU devices (it sets ``XLA_FLAGS`` before jax starts):

    python examples/sharding/train.py
    python examples/sharding/train.py --parallel fsdp --steps 100
    python examples/sharding/train.py --api nnx
"""

import os
import sys

if __name__ == "__main__":
  # XLA reads the device count once, when jax starts: set it before importing jax.
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  _flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = f"{_flags} --xla_force_host_platform_device_count=8".strip()

import argparse  # noqa: E402
import functools  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import flaxen.linen as nn  # noqa: E402
from flaxen import nnx  # noqa: E402
from flaxen.core import meta  # noqa: E402
from flaxen.training.train_state import TrainState  # noqa: E402

# Each style: the mesh's axis names, and rules mapping logical axis names to mesh axes.
# A logical name left unmapped (None) is replicated along that dimension.
STYLES = {
  "dp": (("data", "model"), (
    ("batch", ("data", "model")), ("embed", None), ("mlp", None), ("heads", None),
    ("kv", None), ("vocab", None),
  )),
  "tp": (("data", "model"), (
    ("batch", "data"), ("embed", None), ("mlp", "model"), ("heads", "model"),
    ("kv", None), ("vocab", None),
  )),
  "fsdp": (("data", "fsdp"), (
    ("batch", ("data", "fsdp")), ("embed", "fsdp"), ("mlp", None), ("heads", None),
    ("kv", None), ("vocab", None),
  )),
}


def part(init, *names):
  """``init`` whose result carries the logical axis names of its dimensions."""
  return nn.with_logical_partitioning(init, names)


zeros, ones = nn.initializers.zeros, nn.initializers.ones
dense_init = nn.initializers.lecun_normal()


class Block(nn.Module):
  """x + attn(ln(x)), then x + mlp(ln(x)); q/k/v split by heads, the MLP by hidden units."""

  heads: int

  @nn.compact
  def __call__(self, x, mask):
    dim = x.shape[-1]
    norm = functools.partial(nn.LayerNorm, scale_init=part(ones, "embed"),
                             bias_init=part(zeros, "embed"))
    x = x + nn.SelfAttention(
      self.heads, kernel_init=part(dense_init, "embed", "heads", "kv"),
      bias_init=part(zeros, "heads", "kv"),
      out_kernel_init=part(dense_init, "heads", "kv", "embed"), out_bias_init=part(zeros, "embed"),
    )(norm()(x), mask=mask)
    h = nn.Dense(4 * dim, kernel_init=part(dense_init, "embed", "mlp"),
                 bias_init=part(zeros, "mlp"))(norm()(x))
    return x + nn.Dense(dim, kernel_init=part(dense_init, "mlp", "embed"),
                        bias_init=part(zeros, "embed"))(nn.gelu(h))


class Transformer(nn.Module):
  """Decoder-only Transformer: logits ``(batch, length, vocab)`` for ids ``(batch, length)``."""

  vocab: int
  context: int
  dim: int = 32
  heads: int = 4
  layers: int = 2

  @nn.compact
  def __call__(self, ids):
    x = nn.Embed(self.vocab, self.dim, embedding_init=part(nn.initializers.normal(1.0), "vocab",
                                                           "embed"))(ids)
    pos = self.param("pos", part(nn.initializers.normal(0.02), None, "embed"),
                     (self.context, self.dim))
    x = x + pos[: ids.shape[1]]
    mask = nn.make_causal_mask(ids)
    for _ in range(self.layers):
      x = Block(self.heads)(x, mask)
    x = nn.LayerNorm(scale_init=part(ones, "embed"), bias_init=part(zeros, "embed"))(x)
    return nn.Dense(self.vocab, kernel_init=part(dense_init, "embed", "vocab"),
                    bias_init=part(zeros, "vocab"))(x)


def sharded(*names):
  """Param metadata naming the logical axes of a param's dimensions (NNX)."""
  return {"sharding_names": names}


def npart(init, *names):
  """NNX ``init`` whose Param carries the logical axis names of its dimensions."""
  return nnx.with_partitioning(init, names)


class NnxBlock(nnx.Module):
  """:class:`Block` in NNX: the same params, names and math."""

  def __init__(self, dim: int, heads: int, rngs: nnx.Rngs):
    def norm():
      return nnx.LayerNorm(dim, scale_init=npart(ones, "embed"), bias_init=npart(zeros, "embed"),
                           rngs=rngs)

    self.ln1, self.ln2 = norm(), norm()
    self.attn = nnx.MultiHeadAttention(
      heads, dim, decode=False, rngs=rngs, kernel_metadata=sharded("embed", "heads", "kv"),
      bias_metadata=sharded("heads", "kv"), out_kernel_metadata=sharded("heads", "kv", "embed"),
      out_bias_metadata=sharded("embed"))
    self.up = nnx.Linear(dim, 4 * dim, kernel_init=npart(dense_init, "embed", "mlp"),
                         bias_init=npart(zeros, "mlp"), rngs=rngs)
    self.down = nnx.Linear(4 * dim, dim, kernel_init=npart(dense_init, "mlp", "embed"),
                           bias_init=npart(zeros, "embed"), rngs=rngs)

  def __call__(self, x, mask):
    x = x + self.attn(self.ln1(x), mask=mask)
    return x + self.down(nnx.gelu(self.up(self.ln2(x))))


class NnxTransformer(nnx.Module):
  """:class:`Transformer` in NNX."""

  def __init__(self, vocab: int, context: int, *, dim: int = 32, heads: int = 4,
               layers: int = 2, rngs: nnx.Rngs):
    self.embed = nnx.Embed(vocab, dim, rngs=rngs,
                           embedding_init=npart(nnx.initializers.normal(1.0), "vocab", "embed"))
    pos = nnx.initializers.normal(0.02)(rngs.params(), (context, dim))
    self.pos = nnx.Param(pos, sharding_names=(None, "embed"))
    self.blocks = nnx.List([NnxBlock(dim, heads, rngs) for _ in range(layers)])
    self.ln = nnx.LayerNorm(dim, scale_init=npart(ones, "embed"), bias_init=npart(zeros, "embed"),
                            rngs=rngs)
    self.head = nnx.Linear(dim, vocab, kernel_init=npart(dense_init, "embed", "vocab"),
                           bias_init=npart(zeros, "vocab"), rngs=rngs)

  def __call__(self, ids):
    x = self.embed(ids) + self.pos[: ids.shape[1]]
    mask = nnx.make_causal_mask(ids)
    for block in self.blocks:
      x = block(x, mask)
    return self.head(self.ln(x))


def batches(vocab: int, length: int, batch_size: int, seed: int):
  """Endless batches of arithmetic sequences ``(a + b * t) % vocab``, ``length + 1`` long."""
  rng = np.random.default_rng(seed)
  t = np.arange(length + 1)
  while True:
    a, b = rng.integers(0, vocab, (2, batch_size, 1))
    yield ((a + b * t) % vocab).astype(np.int32)


def create_state(model: Transformer, tx: optax.GradientTransformation, key) -> TrainState:
  params = model.init(key, jnp.zeros((1, model.context), jnp.int32))["params"]
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def train_step(state: TrainState, seqs):
  """One optimizer step on next-token cross-entropy; returns the new state and the loss."""

  def loss_fn(params):
    logits = state.apply_fn({"params": params}, seqs[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, seqs[:, 1:]).mean()

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), loss


@dataclass
class Parallel:
  """A train step compiled for one mesh and one set of rules, with the state it steps."""

  mesh: jax.sharding.Mesh
  state: TrainState
  step: callable
  shardings: TrainState  # the state's NamedShardings
  data_sharding: NamedSharding


def parallelize(model: Transformer, tx: optax.GradientTransformation, key, mesh, rules) -> Parallel:
  """Initialize the state directly in its shardings and jit the step with them."""
  init = functools.partial(create_state, model, tx)
  logical = nn.get_partition_spec(jax.eval_shape(init, key))
  shardings = nn.logical_to_mesh_sharding(logical, mesh, rules)
  state = jax.jit(init, out_shardings=shardings)(key)
  data = NamedSharding(mesh, nn.logical_to_mesh_axes(("batch", None), rules))
  replicated = NamedSharding(mesh, P())
  step = jax.jit(train_step, in_shardings=(shardings, data),
                 out_shardings=(shardings, replicated), donate_argnums=0)
  return Parallel(mesh, state, step, shardings, data)


def nnx_loss(model: NnxTransformer, seqs):
  logits = model(seqs[:, :-1])
  return optax.softmax_cross_entropy_with_integer_labels(logits, seqs[:, 1:]).mean()


@nnx.jit
def nnx_train_step(model: NnxTransformer, optimizer: nnx.Optimizer, seqs):
  """One optimizer step in place; returns the loss. The shardings come with the inputs."""
  loss, grads = nnx.value_and_grad(nnx_loss)(model, seqs)
  optimizer.update(model, grads)
  return loss


@dataclass
class NnxParallel:
  mesh: jax.sharding.Mesh
  rules: tuple
  model: NnxTransformer
  optimizer: nnx.Optimizer
  data_sharding: NamedSharding

  def step(self, seqs):
    with jax.set_mesh(self.mesh), nnx.logical_axis_rules(self.rules):
      return nnx_train_step(self.model, self.optimizer, seqs)


def nnx_parallelize(make_model, tx: optax.GradientTransformation, mesh, rules) -> NnxParallel:
  """Create model and optimizer inside nnx.jit under the mesh and rules: each Param is born
  in the shards its names map to."""

  @nnx.jit
  def create():
    model = make_model()
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

  with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
    model, optimizer = create()
  data = NamedSharding(mesh, nn.logical_to_mesh_axes(("batch", None), rules))
  return NnxParallel(mesh, rules, model, optimizer, data)


def sharding_table(params) -> Table:
  """One row per param array: its path, shape and the PartitionSpec of its sharding."""
  table = Table("param", "shape", "sharding", title="params")
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  for path, leaf in flat:
    name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
    spec = tuple(leaf.sharding.spec)  # padded: jax may drop trailing unsharded dimensions
    table.add_row(name, str(tuple(leaf.shape)), str(P(*spec, *[None] * (leaf.ndim - len(spec)))))
  return table


@dataclass
class Result:
  losses: list[tuple[int, float]]  # (step, mean loss since the previous report)
  params: dict  # the trained params, as a pytree of arrays in their shardings
  mesh: jax.sharding.Mesh
  train_seconds: float


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    description=__doc__.split("\n\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--api", choices=["linen", "nnx"], default="linen", help="model API")
  parser.add_argument("--parallel", choices=sorted(STYLES), default="tp",
                      help="dp: data; tp: data + tensor (Megatron); fsdp: data + fully sharded")
  parser.add_argument("--mesh", default="2x4", help="mesh shape, rows x columns")
  parser.add_argument("--steps", type=int, default=300, help="optimizer steps")
  parser.add_argument("--batch-size", type=int, default=32, help="sequences per step")
  parser.add_argument("--length", type=int, default=16, help="tokens per sequence")
  parser.add_argument("--vocab", type=int, default=32, help="vocabulary size (the modulus)")
  parser.add_argument("--learning-rate", type=float, default=1e-2, help="adam's step size")
  parser.add_argument("--log-every", type=int, default=50, help="steps between loss reports")
  parser.add_argument("--seed", type=int, default=0, help="seeds initialization and batches")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> Result:
  args = parse_args(argv)
  console = console or Console()
  shape = tuple(int(n) for n in args.mesh.split("x"))
  axes, rules = STYLES[args.parallel]
  # Auto axes: jit places the intermediate values; jax.make_mesh's default is Explicit axes,
  # whose shardings are part of the types and must be spelled out at every ambiguous op.
  mesh = jax.make_mesh(shape, axes, axis_types=(AxisType.Auto,) * len(axes),
                       devices=jax.devices()[: int(np.prod(shape))])
  console.print(f"{jax.device_count()} devices; mesh {dict(mesh.shape)}; parallel {args.parallel}")
  console.print(np.vectorize(lambda d: d.id)(mesh.devices))

  tx = optax.adam(args.learning_rate)
  if args.api == "linen":
    run = parallelize(Transformer(args.vocab, args.length), tx, jax.random.key(args.seed), mesh,
                      rules)
    state = run.state

    def train(seqs):
      nonlocal state
      state, loss = run.step(state, seqs)
      return loss

    def params():
      return meta.unbox(state.params)
  else:
    run = nnx_parallelize(
      lambda: NnxTransformer(args.vocab, args.length, rngs=nnx.Rngs(args.seed)), tx, mesh, rules)
    train = run.step

    def params():
      return nnx.state(run.model, nnx.Param).to_pure_dict()
  console.print(sharding_table(params()))

  losses, window = [], []
  data = batches(args.vocab, args.length, args.batch_size, args.seed)
  start = time.perf_counter()
  for step in range(1, args.steps + 1):
    window.append(train(jax.device_put(next(data), run.data_sharding)))
    if step % args.log_every == 0 or step == args.steps:
      mean = float(np.mean(jax.device_get(window)))
      losses.append((step, mean))
      window = []
      console.print(f"step {step:5d}  loss {mean:.3f}")
  seconds = time.perf_counter() - start
  console.print(f"trained {args.steps} steps in {seconds:.1f} s "
                f"(uniform guess: loss {np.log(args.vocab):.3f})")
  return Result(losses, params(), mesh, seconds)


if __name__ == "__main__":
  main(sys.argv[1:])
