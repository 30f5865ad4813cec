"""examples/char_transformer and examples/vae end to end, with tiny settings (slow: defaults)."""

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

EXAMPLES = Path(__file__).parents[1] / "examples"


def load(name):
  # Loaded from its file under a unique name: the example folders are not packages.
  module_name = f"_example_{name}"
  if module_name in sys.modules:
    return sys.modules[module_name]
  spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / name / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules[module_name] = module
  spec.loader.exec_module(module)
  return module


def run(module, *args):
  out = io.StringIO()
  result = module.main(list(args), console=Console(file=out, width=100))
  return result, out.getvalue()


def test_char_transformer_learns_and_samples(tmp_path):
  ct = load("char_transformer")
  result, text = run(ct, "--steps", "60", "--log-every", "20", "--batch-size", "16",
                     "--context", "32", "--dim", "32", "--layers", "1", "--sample-length", "40",
                     "--prompt", "flaxen", "--output-dir", str(tmp_path))
  losses = [loss for _, loss in result.losses]
  assert len(losses) == 3 and losses[-1] < losses[0]
  assert result.sample.startswith("flaxen") and len(result.sample) == len("flaxen") + 40
  assert result.sample_path.read_text(encoding="utf-8") == result.sample
  assert "decode cache" in text


def test_char_transformer_decode_cache_matches_full_forward():
  ct = load("char_transformer")
  from flaxen import nnx

  model = ct.CharTransformer(20, 12, dim=16, heads=2, layers=2, rngs=nnx.Rngs(0))
  ids = np.random.default_rng(0).integers(0, 20, (1, 12)).astype(np.int32)
  full = np.asarray(model(ids))
  model.init_cache(1)
  steps = [np.asarray(model(ids[:, i:i + 1], start=i, decode=True))[:, 0] for i in range(12)]
  np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-5)


def test_vae_elbo_rises_and_writes_png(tmp_path):
  pytest.importorskip("sklearn")
  pytest.importorskip("matplotlib")
  vae = load("vae")
  result, text = run(vae, "--epochs", "3", "--hidden", "64", "--output-dir", str(tmp_path))
  assert len(result.test_elbo) == 3 and result.test_elbo[-1] > result.test_elbo[0]
  assert result.plot.parent == tmp_path and result.plot.read_bytes().startswith(b"\x89PNG")
  assert str(result.plot) in text.replace("\n", "")


@pytest.mark.slow
def test_char_transformer_defaults(tmp_path):
  result, _ = run(load("char_transformer"), "--output-dir", str(tmp_path))
  assert result.losses[-1][1] < 1.0  # the uniform guess is about 4.45


@pytest.mark.slow
def test_vae_defaults(tmp_path):
  pytest.importorskip("sklearn")
  pytest.importorskip("matplotlib")
  result, _ = run(load("vae"), "--output-dir", str(tmp_path))
  assert result.test_elbo[-1] > -26.0
