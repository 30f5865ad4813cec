"""Zero-edit mode: `python -m flaxen run` and `install_as_flax` serve `import flax...` with
flaxen's modules, never a real flax on the path, and name the Flax modules flaxen lacks."""

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

import flaxen
from flaxen import errors, flax_alias

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The name the alias serves. The programs below are templates with `{F}` for it: they are
# run in subprocesses under the alias, and this file itself imports nothing of that name.
F = flax_alias._FLAX


def served(template: str) -> str:
  return textwrap.dedent(template).replace("{F}", F)

# A program for Flax, unedited: Flax's import paths only.
PROGRAM = served("""
  import sys
  import jax, jax.numpy as jnp, optax
  import {F}
  import {F}.linen as nn
  from {F} import nnx, struct, serialization
  from {F}.core import freeze
  from {F}.training import train_state, common_utils
  from {F}.cursor import cursor

  class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(1)(nn.relu(nn.Dense(4)(x)))

  x, y = jnp.ones((8, 3)), jnp.zeros((8, 1))
  model = MLP()
  state = train_state.TrainState.create(
    apply_fn=model.apply, params=model.init(jax.random.key(0), x)["params"], tx=optax.sgd(0.1))
  loss = lambda p: jnp.mean((state.apply_fn({"params": p}, x) - y) ** 2)
  first = loss(state.params)
  for _ in range(5):
    state = state.apply_gradients(grads=jax.grad(loss)(state.params))
  assert loss(state.params) < first
  bumped = cursor(freeze({"a": 1}))["a"].set(2)
  linear = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  import flaxen
  print("ARGV", sys.argv[1:])
  print("SAME", {F} is flaxen, nn is flaxen.linen, nnx is flaxen.nnx,
        train_state is sys.modules["flaxen.training.train_state"],
        type(linear).__module__.startswith("flaxen"), bumped["a"])
  print("MAIN", __name__)
""")


def run(args, cwd, extra_path=()):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([*extra_path, os.path.join(ROOT, "src")]))
  return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=240)


@pytest.fixture
def fake_flax(tmp_path):
  """A directory holding a package named `flax` that must never be imported."""
  site = tmp_path / "site"
  (site / "flax").mkdir(parents=True)
  (site / "flax" / "__init__.py").write_text("raise RuntimeError('the real flax was loaded')\n")
  return str(site)


def test_run_serves_a_flax_program_with_flaxen_modules(tmp_path, fake_flax):
  (tmp_path / "prog.py").write_text(PROGRAM)
  proc = run(["-m", "flaxen", "run", "prog.py", "--lr", "0.1"], tmp_path, [fake_flax])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "ARGV ['--lr', '0.1']" in proc.stdout
  assert "SAME True True True True True 2" in proc.stdout
  assert "MAIN __main__" in proc.stdout


def test_a_library_importing_flax_inside_its_modules(tmp_path, fake_flax):
  pkg = tmp_path / "mylib"
  pkg.mkdir()
  (pkg / "__init__.py").write_text("from mylib.layers import make\n")
  (pkg / "layers.py").write_text(served("""
    import {F}.linen as nn
    from {F}.training import checkpoints

    class Block(nn.Module):
      @nn.compact
      def __call__(self, x):
        return nn.Dense(2)(x)

    def make():
      return Block(), checkpoints
  """))
  (tmp_path / "main.py").write_text(textwrap.dedent("""
    import jax, jax.numpy as jnp
    import mylib, flaxen
    block, ckpts = mylib.make()
    params = block.init(jax.random.key(0), jnp.ones((1, 3)))
    print("LIB", ckpts is flaxen.training.checkpoints, isinstance(block, flaxen.linen.Module),
          params["params"]["Dense_0"]["kernel"].shape)
  """))
  proc = run(["-m", "flaxen", "run", "main.py"], tmp_path, [fake_flax])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "LIB True True (3, 2)" in proc.stdout
  # run -m: the library's own module as the program
  (pkg / "__main__.py").write_text(served("import {F}, flaxen\nprint('PKG', {F} is flaxen)\n"))
  proc = run(["-m", "flaxen", "run", "-m", "mylib"], tmp_path, [fake_flax])
  assert proc.returncode == 0 and "PKG True" in proc.stdout, proc.stderr[-3000:]


def test_missing_flax_module_is_named(tmp_path):
  (tmp_path / "prog.py").write_text(served("import {F}.experimental.nnx\n"))
  proc = run(["-m", "flaxen", "run", "prog.py"], tmp_path)
  assert proc.returncode == 1
  assert "FlaxModuleNotProvidedError" in proc.stderr and "'flax.experimental'" in proc.stderr


def test_usage_without_a_program(tmp_path):
  proc = run(["-m", "flaxen"], tmp_path)
  assert proc.returncode == 2 and "python -m flaxen run prog.py" in proc.stderr


def test_install_as_flax_in_process():
  flaxen.install_as_flax()
  try:
    flaxen.install_as_flax()  # twice: one finder
    served_root = importlib.import_module(F)
    es = importlib.import_module(f"{F}.training.early_stopping")
    jax_utils = importlib.import_module(f"{F}.jax_utils")

    assert served_root is flaxen and jax_utils is flaxen.jax_utils
    assert es is flaxen.training.early_stopping
    assert es.__spec__.name == "flaxen.training.early_stopping"  # flaxen's spec is kept
    assert sum(type(f).__name__ == "_Alias" for f in sys.meta_path) == 1
    with pytest.raises(errors.FlaxModuleNotProvidedError) as info:
      importlib.import_module(f"{F}.not_a_module")
    assert isinstance(info.value, ModuleNotFoundError) and info.value.name == f"{F}.not_a_module"
  finally:
    flaxen.uninstall_flax_alias()
  assert F not in sys.modules
  with pytest.raises(ModuleNotFoundError):
    importlib.import_module(F)


def test_refuses_after_a_real_flax_was_imported(monkeypatch):
  import types

  monkeypatch.setitem(sys.modules, F, types.ModuleType(F))
  with pytest.raises(errors.RealFlaxImportedError, match="before anything imports flax"):
    flaxen.install_as_flax()


def test_a_blocked_flax_import_is_unblocked(monkeypatch):
  monkeypatch.setitem(sys.modules, F, None)  # what `sys.modules[name] = None` blocks
  flaxen.install_as_flax()
  try:
    assert importlib.import_module(F) is flaxen
  finally:
    flaxen.uninstall_flax_alias()
