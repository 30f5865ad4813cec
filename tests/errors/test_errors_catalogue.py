"""docs/errors.md documents every class of flaxen.errors, and each example raises its class.

The catalogue's entries are ``### `Name` `` sections (``### `Name` (alias `Other`)`` for a
second public name of the same class). Each holds one example in a ```` ```python raises ````
fence (test_docs.py runs only plain ```` ```python ```` blocks, which must not raise) and a
``Fix:`` line. An entry whose example stops raising, a class without an entry, or an entry
for a class that no longer exists fails here.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import types
from pathlib import Path

import pytest

import flaxen.errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
HEADING = re.compile(r"^### `(\w+)`(?: \(alias `(\w+)`\))?$", re.MULTILINE)
EXAMPLE = re.compile(r"^```python raises\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def public_classes() -> dict[str, type]:
  """Every name in the ``__all__`` of a flaxen.errors submodule, with its class."""
  found: dict[str, type] = {}
  for info in pkgutil.iter_modules(flaxen.errors.__path__):
    module = importlib.import_module(f"flaxen.errors.{info.name}")
    for name in module.__all__:
      cls = getattr(module, name)
      assert found.setdefault(name, cls) is cls, f"two classes are named {name}"
  return found


def entries() -> dict[str, tuple[str | None, str]]:
  """``{name: (alias, section text)}`` for each ``###`` entry of the catalogue."""
  text = DOC.read_text()
  marks = list(HEADING.finditer(text))
  out = {}
  for mark, nxt in zip(marks, [*marks[1:], None], strict=True):
    end = nxt.start() if nxt else len(text)
    assert mark.group(1) not in out, f"{mark.group(1)} is documented twice"
    out[mark.group(1)] = (mark.group(2), text[mark.end():end].split("\n## ")[0])
  return out


CLASSES = public_classes()
ENTRIES = entries()


def test_every_class_is_public_and_documented_once():
  for name, cls in CLASSES.items():
    assert getattr(flaxen.errors, name) is cls, f"flaxen.errors.{name} is not {cls}"
    assert issubclass(cls, flaxen.errors.FlaxenError)
  documented = set(ENTRIES) | {alias for alias, _ in ENTRIES.values() if alias}
  assert sorted(set(CLASSES) - documented) == [], "classes missing from docs/errors.md"
  assert sorted(documented - set(CLASSES)) == [], "docs/errors.md names unknown classes"
  for name, (alias, _) in ENTRIES.items():
    assert alias is None or CLASSES[alias] is CLASSES[name]


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_example_raises_its_class_and_says_the_fix(name):
  _, section = ENTRIES[name]
  examples = EXAMPLE.findall(section)
  assert len(examples) == 1, f"{name}: expected one ```python raises block"
  assert "\nFix:" in section, f"{name}: the entry does not say the fix"
  cls = CLASSES[name]
  # A real module in sys.modules, as dataclasses (and so Linen modules) look classes up there.
  module = types.ModuleType("__errors_example__")
  sys.modules[module.__name__] = module
  try:
    with pytest.raises(cls) as info:
      exec(compile(examples[0], f"<docs/errors.md: {name}>", "exec"), module.__dict__)
  finally:
    del sys.modules[module.__name__]
  # A class with subclasses (a base) may raise any of them; any other raises itself.
  if not any(c is not cls and issubclass(c, cls) for c in CLASSES.values()):
    assert type(info.value) is cls, f"{name}'s example raised {type(info.value).__name__}"
  assert "Fix" in str(info.value), str(info.value)
