"""Random number streams as graph state.

Each stream holds a key (``RngKey``) and a counter (``RngCount``); drawing a key returns
``fold_in(key, count)`` and increments the counter. Both are Variables, so a stream's
progress is state that ``nnx.jit`` and ``nnx.split`` carry like any other: a jitted step
that draws dropout keys advances the caller's counter.

>>> import jax
>>> from flaxen import nnx
>>> rngs = nnx.Rngs(0, dropout=1)
>>> k1, k2 = rngs.params(), rngs.params()  # no 'params' stream: falls back to 'default'
>>> bool((jax.random.key_data(k1) != jax.random.key_data(k2)).any())
True
>>> int(rngs.default.count.value), int(rngs.dropout.count.value)
(2, 0)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flaxen.errors.nnx import NoRngStreamError
from flaxen.nnx import filterlib
from flaxen.nnx.graphlib import iter_graph
from flaxen.nnx.object import Object
from flaxen.nnx.variables import Variable

__all__ = ["Rngs", "RngStream", "RngState", "RngKey", "RngCount", "reseed", "split_rngs",
           "restore_rngs", "SplitBackups"]


class RngState(Variable):
  """Base class of the Variables of an Rng stream; ``tag`` is the stream name."""


class RngKey(RngState):
  """The key of an Rng stream."""


class RngCount(RngState):
  """The number of keys drawn from an Rng stream."""


def _as_key(seed: Any) -> jax.Array:
  if isinstance(seed, int) or (hasattr(seed, "shape") and seed.shape == ()
                               and not jnp.issubdtype(seed.dtype, jax.dtypes.prng_key)):
    return jax.random.key(seed)
  if not jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):  # raw uint32 key data
    return jax.random.wrap_key_data(seed)
  return seed


class RngStream(Object):
  """One named stream: calling it returns a fresh key."""

  def __init__(self, key: Any, *, tag: str):
    self.key = RngKey(_as_key(key), tag=tag)
    self.count = RngCount(jnp.zeros(self.key.value.shape, jnp.uint32), tag=tag)
    self.tag = tag

  def __call__(self) -> jax.Array:
    count = self.count.value
    key = _fold_in(self.key.value, count)
    self.count.value = count + 1
    return key

  def fork(self, *, split: int | tuple[int, ...] | None = None) -> RngStream:
    """A new stream seeded from this one; with ``split``, a stream of split keys (for
    constructing vmapped modules)."""
    key = self()
    if split is not None:
      key = jax.random.split(key, split)
    return RngStream(key, tag=self.tag)

  def split(self, k: int | tuple[int, ...]) -> RngStream:
    return self.fork(split=k)


def _fold_in(key: jax.Array, count: jax.Array) -> jax.Array:
  if key.ndim == 0:
    return jax.random.fold_in(key, count)
  return jax.vmap(_fold_in)(key, count)


class Rngs(Object):
  """A set of named random streams (``params``, ``dropout``, ``default``...).

  Args:
    default: seed (int or key) of the ``default`` stream, which serves any name that has no
      stream of its own.
    **rngs: seeds of other streams by name.
  """

  def __init__(self, default: Any = None, /, **rngs: Any):
    if isinstance(default, Mapping):
      rngs = {**default, **rngs}
    elif default is not None:
      rngs["default"] = default
    for name, seed in rngs.items():
      stream = seed if isinstance(seed, RngStream) else RngStream(seed, tag=name)
      setattr(self, name, stream)

  def _stream(self, name: str) -> RngStream:
    d = self.__dict__
    stream = d.get(name) or d.get("default")
    if not isinstance(stream, RngStream):
      raise NoRngStreamError(name, self.streams())
    return stream

  def __getattr__(self, name: str) -> RngStream:
    if name.startswith("_"):
      raise AttributeError(name)
    return self._stream(name)

  def __getitem__(self, name: str) -> RngStream:
    return self._stream(name)

  def __call__(self) -> jax.Array:
    return self._stream("default")()

  def __contains__(self, name: str) -> bool:
    return isinstance(self.__dict__.get(name), RngStream)

  def streams(self) -> list[str]:
    return [k for k, v in self.__dict__.items() if isinstance(v, RngStream)]

  def items(self) -> Iterator[tuple[str, RngStream]]:
    return ((k, self.__dict__[k]) for k in self.streams())

  def fork(self, *, split: int | tuple[int, ...] | None = None) -> Rngs:
    """New Rngs seeded from these streams (each advances by one); ``split`` splits every
    new key into that many (for constructing modules under ``vmap``)."""
    return Rngs(**{name: stream.fork(split=split) for name, stream in self.items()})

  def split(self, k: int | tuple[int, ...]) -> Rngs:
    """``fork(split=k)``."""
    return self.fork(split=k)


def reseed(node: Any, /, **stream_seeds: Any) -> None:
  """Resets the named streams found anywhere in ``node``: new key, count back to 0.

  >>> from flaxen import nnx
  >>> rngs = nnx.Rngs(dropout=0)
  >>> a = rngs.dropout(); nnx.reseed(rngs, dropout=0)
  >>> bool((jax.random.key_data(a) == jax.random.key_data(rngs.dropout())).all())
  True
  """
  for _, value in iter_graph(node):
    if isinstance(value, RngStream) and value.tag in stream_seeds:
      value.key.value = _as_key(stream_seeds[value.tag])
      value.count.value = jnp.zeros(value.key.value.shape, jnp.uint32)



class SplitBackups:
  """The streams ``split_rngs`` changed and their old key and count; a context manager that
  restores them on exit."""

  def __init__(self, backups: list[tuple[RngStream, Any, Any]]):
    self.backups = backups

  def __enter__(self) -> SplitBackups:
    return self

  def __exit__(self, *exc: Any) -> None:
    restore_rngs(self)


def restore_rngs(backups: SplitBackups) -> None:
  """Puts back the keys and counts that ``split_rngs`` replaced."""
  for stream, key, count in backups.backups:
    stream.key.value = key
    stream.count.value = count


_MISSING: Any = object()


def split_rngs(node: Any = _MISSING, /, *, splits: int | tuple[int, ...], only: Any = ...,
               squeeze: bool = False) -> Any:
  """Replaces the key of every Rng stream in ``node`` by ``splits`` keys split from it.

  Meant for ``nnx.vmap``/``nnx.scan`` over an axis of that size: each slice then draws from
  its own key. Each stream advances by one draw; its old key and count are kept in the
  returned ``SplitBackups`` (a context manager restoring them on exit, also done by
  ``restore_rngs``). Without ``node``, a decorator that splits the streams found in the
  function's arguments for the duration of each call.

  Args:
    node: a graph object (or pytree of them) holding ``Rngs``.
    splits: the number (or shape) of keys.
    only: a filter selecting the streams (e.g. ``'dropout'``); all by default.
    squeeze: keep a single split key, without the new axis.

  >>> import jax
  >>> from flaxen import nnx
  >>> rngs = nnx.Rngs(0)
  >>> with nnx.split_rngs(rngs, splits=4):
  ...   rngs.default.key.value.shape
  (4,)
  >>> rngs.default.key.value.shape
  ()
  """
  if node is _MISSING:
    def decorator(f: Callable) -> Callable:
      @functools.wraps(f)
      def wrapper(*args: Any, **kwargs: Any) -> Any:
        with split_rngs((args, kwargs), splits=splits, only=only, squeeze=squeeze):
          return f(*args, **kwargs)
      return wrapper
    return decorator
  predicate = filterlib.to_predicate(only)
  backups = []
  for path, stream in iter_graph(node):
    if not (isinstance(stream, RngStream) and predicate((*path, "key"), stream.key)
            and predicate((*path, "count"), stream.count)):
      continue
    key = stream()
    backups.append((stream, stream.key.value, stream.count.value))
    key = jax.random.split(key, splits)
    if squeeze:
      key = key[0]
    stream.key.value = key
    stream.count.value = jnp.zeros(key.shape, jnp.uint32)
  return SplitBackups(backups)
