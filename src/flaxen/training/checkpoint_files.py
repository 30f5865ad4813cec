"""Names of step-numbered checkpoints (``<dir>/<prefix><step>``): listing, sorting, pruning.

The part of ``flaxen.training.checkpoints`` that only looks at file names, shared by its
Orbax and msgpack backends.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable

from flaxen.checkpoint.save_restore import TMP_MARKER

_log = logging.getLogger("flaxen.training.checkpoints")

# A number inside a file name, with its sign (SIGNED) or with the sign left outside the
# captured group (UNSIGNED, so '-' and '+' act as separators).
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
SIGNED_FLOAT_RE = re.compile(rf"([-+]?{_NUMBER})")
UNSIGNED_FLOAT_RE = re.compile(rf"[-+]?({_NUMBER})")
# A submodule name ending in its number, e.g. 'Dense_3'.
MODULE_NUM_RE = re.compile(r"(.*)_\d+$")
# An optional URL scheme ('gs://') before a path.
SCHEME_RE = re.compile(r"^(?P<scheme>[a-z][a-z0-9.+-]+://)?(?P<path>.*)", re.IGNORECASE)
# Flax's name for the directory of multi-process arrays next to a msgpack checkpoint.
MP_ARRAY_POSTFIX = "_gda"


def natural_sort(file_list: Iterable[str], signed: bool = True) -> list[str]:
  """Sorts names with the numbers inside them compared as numbers.

  ``ckpt_1, ckpt_10, ckpt_2`` sorts as ``ckpt_1, ckpt_2, ckpt_10``; with ``signed``, a
  leading ``-`` or ``+`` belongs to the number (``ckpt_-0.2`` before ``ckpt_0.1``).

  Args:
    file_list: the names.
    signed: whether a sign before a number is part of it (else a separator).

  >>> natural_sort(["ckpt_10", "ckpt_2", "ckpt_-1.5"])
  ['ckpt_-1.5', 'ckpt_2', 'ckpt_10']
  """
  number = SIGNED_FLOAT_RE if signed else UNSIGNED_FLOAT_RE

  def key(name: str) -> list:
    # re.split with one group alternates text and numbers: text at even positions.
    return [float(p) if i % 2 else p for i, p in enumerate(number.split(name))]

  return sorted(file_list, key=key)


def safe_normpath(path: str) -> str:
  """``os.path.normpath`` of the path part, keeping a ``scheme://`` prefix intact."""
  match = SCHEME_RE.match(path)
  assert match is not None  # the pattern matches any string
  return (match["scheme"] or "") + os.path.normpath(match["path"])


def step_of(path: str) -> float | None:
  """The last number in ``path``, as a float, or None."""
  numbers = SIGNED_FLOAT_RE.findall(path)
  return float(numbers[-1]) if numbers else None


def listed(ckpt_dir: str, prefix: str) -> list[str]:
  """Paths of the checkpoints named ``<prefix>*`` in ``ckpt_dir``, naturally sorted.

  Leaves out the msgpack backend's ``<prefix>tmp``, Flax's ``_gda`` array directories and
  directories Orbax (or flaxen) is still writing.
  """
  try:
    names = os.listdir(ckpt_dir)
  except (FileNotFoundError, NotADirectoryError):
    return []
  kept = [n for n in names if n.startswith(prefix) and n != f"{prefix}tmp"
          and not n.endswith(MP_ARRAY_POSTFIX) and TMP_MARKER not in n]
  return natural_sort(os.path.join(ckpt_dir, n) for n in kept)


def remove(path: str) -> None:
  _log.info("Removing checkpoint at %s", path)
  if os.path.isdir(path):
    shutil.rmtree(path)
  elif os.path.exists(path):
    os.remove(path)


def prune(ckpt_path: str, ckpt_dir: str, prefix: str, keep: int, overwrite: bool,
          keep_every_n_steps: int | None) -> None:
  """Removes what a save of ``ckpt_path`` leaves behind.

  With ``overwrite``, the checkpoints after ``ckpt_path`` go. Then all but the last
  ``keep`` go, except that with ``keep_every_n_steps`` an old checkpoint at least that
  many steps after the previous one kept is kept too (step 0 never is, as in Flax).
  """
  paths = listed(ckpt_dir, prefix)
  if overwrite and ckpt_path in paths:
    cut = paths.index(ckpt_path) + 1
    for path in paths[cut:]:
      remove(path)
    paths = paths[:cut]
  last_kept = -float("inf")
  for path in paths[:-keep] if keep > 0 else []:  # keep <= 0 removes nothing, as in Flax
    step = step_of(os.path.basename(path))
    if keep_every_n_steps and step and step - last_kept >= keep_every_n_steps:
      last_kept = step
      continue
    remove(path)
