"""examples/demo.py end to end: training, the checkpoint round trip and the plot, both APIs."""

import io
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))

from rich.console import Console  # noqa: E402

import demo  # noqa: E402


def run(api, output_dir, *args):
  out = io.StringIO()
  result = demo.main(["--api", api, "--output-dir", str(output_dir), *args],
                     console=Console(file=out, width=100))
  return result, out.getvalue()


@pytest.mark.parametrize("api", ["nnx", "linen"])
def test_one_epoch_round_trip_and_plot(api, tmp_path):
  result, text = run(api, tmp_path, "--epochs", "1", "--batch-size", "64")
  assert result.restored_accuracy == result.test_accuracy
  assert result.test_accuracy > 0.5  # one epoch is far past chance (0.1)
  assert result.checkpoint.is_dir() and result.checkpoint.parent == tmp_path
  assert result.plot.read_bytes().startswith(b"\x89PNG")
  assert len(result.history.test_accuracy) == 1
  assert "Total Parameters: 151,306" in text and "same test accuracy" in text


@pytest.mark.slow
@pytest.mark.parametrize("api", ["nnx", "linen"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_settings_reach_97_percent(api, seed, tmp_path):
  result, _ = run(api, tmp_path, "--seed", str(seed))
  assert result.test_accuracy >= 0.97
