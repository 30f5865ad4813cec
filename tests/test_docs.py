"""Every ```python block in README.md and docs/*.md runs, so the docs cannot drift."""

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks():
  for doc in DOCS:
    for i, match in enumerate(BLOCK.finditer(doc.read_text())):
      yield pytest.param(match.group(1), id=f"{doc.name}[{i}]")


@pytest.mark.parametrize("code", list(_blocks()))
def test_doc_block_runs(code, monkeypatch):
  # A real module in sys.modules, as dataclasses (and so Linen modules) look classes up there.
  module = types.ModuleType("__doc_block__")
  monkeypatch.setitem(sys.modules, module.__name__, module)
  exec(compile(code, "<doc block>", "exec"), module.__dict__)


def test_readme_has_a_runnable_block():
  assert BLOCK.search((ROOT / "README.md").read_text())
