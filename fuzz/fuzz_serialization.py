"""Fuzz target: msgpack bytes into ``msgpack_restore`` and ``serialization.from_bytes``.

Any input must either raise :class:`flaxen.errors.SerializationError` or decode to a value
that is correct: only plain msgpack values and numeric or datetime/timedelta NumPy
arrays/scalars (bools of bytes 0 and 1), which encode back to the same bytes as the value
itself; restored into a target, the target's containers, each leaf of the target holding
the saved value there (any shape, dtype or subtree, as in Flax).
Anything else (another exception, a crash, a hang past ``-timeout``) is a finding.

Run: ``python fuzz/fuzz_serialization.py -max_total_time=60 -timeout=5``.
"""

from __future__ import annotations

import _runner
import atheris

with atheris.instrument_imports(include=["flaxen"]):
  import jax
  import numpy as np

  from flaxen import errors, serialization, struct
  from flaxen.msgpack_codec import msgpack_restore, msgpack_serialize

PLAIN = (dict, list, str, bytes, bool, int, float, complex, type(None))


@struct.dataclass
class Layer:
  w: np.ndarray
  b: np.ndarray
  name: str = struct.field(pytree_node=False, default="dense")


TARGETS = [
  {"params": {"w": np.zeros((2, 3), np.float32), "b": np.zeros((3,), np.int8)}, "step": 0},
  [Layer(np.zeros((2,), np.float16), np.zeros((), np.uint32)), (np.float32(0), None)],
  Layer(np.zeros((1, 2, 1), np.complex64), np.zeros((0,), np.bool_)),
]


def _filled(tree, seed: int):
  rng = np.random.default_rng(seed)
  fill = lambda x: (rng.integers(0, 2, np.shape(x)) if np.ndim(x) else rng.integers(0, 2)).astype(
    np.asarray(x).dtype
  )
  return jax.tree.map(lambda x: fill(x)[()] if isinstance(x, np.generic) else fill(x), tree)


def seeds() -> list[bytes]:
  out = [serialization.to_bytes(_filled(t, i)) for i, t in enumerate(TARGETS)]
  out.append(msgpack_serialize({"c": 1 + 2j, "s": "x", "raw": b"\x00", "n": None, "l": [1.5]}))
  return out


def _check_plain(tree) -> None:
  if isinstance(tree, dict):
    for k, v in tree.items():
      _check_plain(k)
      _check_plain(v)
  elif isinstance(tree, list):
    for v in tree:
      _check_plain(v)
  elif isinstance(tree, np.ndarray | np.generic):
    assert tree.dtype.kind in "biufcVmM" and tree.dtype != object, tree.dtype
    if tree.dtype == np.bool_:  # only 0 and 1 are bools that JAX handles consistently
      assert set(np.asarray(tree).tobytes()) <= {0, 1}, tree
  else:
    assert type(tree) in PLAIN, type(tree)


def _check_restored(target, value) -> None:
  # The target's containers are kept; each leaf of the target (None included) takes
  # whatever was saved there, as in Flax: any shape, dtype or subtree of plain values.
  treedef = jax.tree.structure(target, is_leaf=lambda x: x is None)
  for v in treedef.flatten_up_to(value):
    _check_plain(v)


def check_one(data: bytes) -> None:
  try:
    state = msgpack_restore(data)
  except errors.SerializationError:
    state = None
  else:
    _check_plain(state)
    jax.tree.flatten(state)  # a state JAX can take
    again = msgpack_serialize(state)
    assert msgpack_serialize(msgpack_restore(again)) == again
  for target in TARGETS:
    try:
      value = serialization.from_bytes(target, data)
    except errors.SerializationError:
      continue
    _check_restored(target, value)


if __name__ == "__main__":
  _runner.run(check_one, seeds())
