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

from flaxen.errors.nnx import NoRngStreamError, ReseedShapeError
from flaxen.nnx import filterlib
from flaxen.nnx.graph_mode import resolve_graph, resolve_graph_updates
from flaxen.nnx.graphlib import clone, iter_graph
from flaxen.nnx.object import Object
from flaxen.nnx.rng_sampling import Sampling
from flaxen.nnx.variables import Variable

__all__ = ["Rngs", "RngStream", "RngState", "RngKey", "RngCount", "reseed", "split_rngs",
           "restore_rngs", "SplitBackups", "fork_rngs", "with_rngs", "backup_keys"]


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


class RngStream(Sampling, Object):
  """One named stream: calling it returns a fresh key; ``normal(shape)`` and the other
  sampling methods draw with the next key."""

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
      key = _split(key, split)
    return RngStream(key, tag=self.tag)

  def split(self, k: int | tuple[int, ...]) -> RngStream:
    return self.fork(split=k)

  def broadcast(self, k: int | tuple[int, ...]) -> RngStream:
    """A new stream whose key and count are this stream's, repeated to shape ``k`` (every
    slice of a ``vmap`` over that shape then draws the same keys)."""
    shape = (k,) if isinstance(k, int) else tuple(k)
    out = RngStream(jnp.broadcast_to(self.key.value, shape), tag=self.tag)
    out.count.value = jnp.broadcast_to(self.count.value, shape)
    return out

  def _next_key(self) -> jax.Array:
    return self()


def _split(key: jax.Array, shape: int | tuple[int, ...]) -> jax.Array:
  """``jax.random.split`` that also splits a batch of keys (a stream split before, or made
  under ``vmap``): the new axes come first, shape ``(*shape, *key.shape)``, so a transform
  over axis 0 hands each slice a batch like the one split."""
  if key.ndim == 0:
    return jax.random.split(key, shape)
  shape = (shape,) if isinstance(shape, int) else tuple(shape)
  out = jax.vmap(lambda k: jax.random.split(k, shape))(key.reshape(-1))
  out = out.reshape(*key.shape, *shape)
  n = key.ndim
  return jnp.transpose(out, (*range(n, out.ndim), *range(n)))


def _fold_in(key: jax.Array, count: jax.Array) -> jax.Array:
  if key.ndim == 0:
    return jax.random.fold_in(key, count)
  return jax.vmap(_fold_in)(key, count)


class Rngs(Sampling, Object):
  """A set of named random streams (``params``, ``dropout``, ``default``...).

  ``rngs.normal(shape)`` and the other sampling methods draw from the ``default`` stream;
  a stream named like one of them is reached as ``rngs['normal']``.

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

  def fork(self, *, split: Any = None) -> Rngs:
    """New Rngs seeded from these streams (each advances by one); ``split`` splits the new
    keys (for constructing modules under ``vmap``): one shape for every stream, or
    ``{filter: shape}`` (first match; the other streams are forked unsplit)."""
    if not isinstance(split, Mapping):
      return Rngs(**{name: stream.fork(split=split) for name, stream in self.items()})
    rules = _rules(split)
    out = {}
    for name, stream in self.items():
      m = _first(rules, (name,), stream)
      out[name] = stream.fork(split=None if m is None else m[0])
    return Rngs(**out)

  def split(self, k: Any) -> Rngs:
    """``fork(split=k)``."""
    return self.fork(split=k)

  def broadcast(self, k: Any) -> Rngs:
    """New Rngs whose streams are these, broadcast to shape ``k``: one shape for all, or a
    mapping from stream name to shape (``None``: the stream is copied as it is)."""
    out = {}
    for name, stream in self.items():
      to = k.get(name) if isinstance(k, Mapping) else k
      out[name] = stream.broadcast(to) if to is not None else stream.broadcast(
        stream.key.value.shape)
    return Rngs(**out)

  def _next_key(self) -> jax.Array:
    return self._stream("default")()


def reseed(node: Any, /, *, graph: bool | None = None,
           policy: str | Callable[[tuple, jax.Array, tuple], jax.Array] = "scalars_only",
           **stream_keys: Any) -> None:
  """Restarts the named streams found anywhere in ``node``: new key, count back to 0.

  Each stream named ``name`` gets the next key drawn from a fresh ``Rngs(name=seed)``
  (streams sharing a name get that stream's successive keys), the key a layer that forks
  its stream from ``Rngs(name=seed)`` (``nnx.Dropout``) started with: reseeding such a
  layer with its original seed replays its draws.

  Args:
    node: a graph (or pytree) holding Rng streams.
    graph: graph mode or tree mode (``False``: no shared references allowed).
    policy: ``'scalars_only'`` (a stream whose key was split is an error),
      ``'match_shape'`` (the new key is split to the shape of a split stream's key), or a
      function ``(path, key, shape) -> key``.
    **stream_keys: seed (int or key) per stream name.

  Raises:
    ReseedShapeError: with ``'scalars_only'``, a matching stream's key is not a scalar.

  >>> from flaxen import nnx
  >>> layer = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=0))
  >>> x = jax.numpy.ones(16)
  >>> a = layer(x); nnx.reseed(layer, dropout=0)
  >>> bool((a == layer(x)).all())
  True
  """
  if policy == "scalars_only":
    policy = _scalars_only
  elif policy == "match_shape":
    policy = _match_shape
  elif not callable(policy):
    raise ValueError("reseed: policy must be 'scalars_only', 'match_shape' or a function, "
                     f"got {policy!r}")
  fresh = {name: RngStream(seed, tag=name) for name, seed in stream_keys.items()}
  for path, value in iter_graph(node, graph=graph):
    if isinstance(value, RngStream) and value.tag in fresh:
      key = policy(path, fresh[value.tag](), value.key.value.shape)
      value.key.value = key
      value.count.value = jnp.zeros(key.shape, jnp.uint32)


def _scalars_only(path: tuple, key: jax.Array, shape: tuple) -> jax.Array:
  if shape != ():
    raise ReseedShapeError(path, shape)
  return key


def _match_shape(path: tuple, key: jax.Array, shape: tuple) -> jax.Array:
  return jax.random.split(key, shape) if shape != () else key


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


def _streams(node: Any, only: Any, graph: bool | None) -> list[tuple[tuple, RngStream]]:
  """The Rng streams in ``node`` matching the filter ``only``, with their paths."""
  predicate = filterlib.to_predicate(only)
  return [(path, stream) for path, stream in iter_graph(node, graph=graph)
          if isinstance(stream, RngStream) and predicate((*path, "key"), stream.key)
          and predicate((*path, "count"), stream.count)]


def _rules(value: Any) -> list[tuple[Any, Any]]:
  """``[(predicate, shape)]`` from a shape (all streams) or a ``{filter: shape}`` mapping."""
  if value is None:
    return []
  if isinstance(value, Mapping):
    return [(filterlib.to_predicate(f), v) for f, v in value.items()]
  return [(filterlib.to_predicate(...), value)]


def _first(rules: list, path: tuple, stream: RngStream) -> Any:
  for pred, shape in rules:
    if pred((*path, "key"), stream.key):
      return (shape,)
  return None


def _in_place(node: Any, only: Any, graph: bool | None, new_key: Callable) -> SplitBackups:
  """Gives each matching stream ``new_key(path, stream)`` (count back to 0), keeping
  backups."""
  backups = []
  for path, stream in _streams(node, only, graph):
    key = new_key(path, stream)  # draws from the stream: the backup keeps that advance
    backups.append((stream, stream.key.value, stream.count.value))
    stream.key.value = key
    stream.count.value = jnp.zeros(key.shape, jnp.uint32)
  return SplitBackups(backups)


def _decorator(transform: Callable, **kwargs: Any) -> Callable:
  """A decorator that calls ``transform(args, kwargs)`` before each call of ``f``."""
  def decorator(f: Callable) -> Callable:
    @functools.wraps(f)
    def wrapper(*args: Any, **kw: Any) -> Any:
      out = transform((args, kw), **kwargs)
      if isinstance(out, SplitBackups):
        with out:
          return f(*args, **kw)
      args, kw = out
      return f(*args, **kw)
    return wrapper
  return decorator


def with_rngs(node: Any = _MISSING, /, *, split: Any = None, fork: Any = None,
              broadcast: Any = None, only: Any = True, graph: bool | None = None,
              graph_updates: bool | None = None) -> Any:
  """A copy of ``node`` whose Rng streams are split, forked or broadcast.

  The original streams each advance by one draw where a new key is made from them (split
  and fork), but keep their keys. Streams that match no rule are copied unchanged.
  Without ``node``, a decorator that passes the function copies of its arguments.

  Args:
    node: a graph or pytree holding Rng streams.
    split: a shape (int or tuple) for every stream, or ``{filter: shape}`` (the first
      matching filter wins): the stream's next key split into that many keys.
    fork: a filter: those streams get their next key, unsplit.
    broadcast: like ``split``, but the stream's key and count are repeated to the shape
      (``None`` in a mapping: left as it is).
    only: a filter selecting the streams that the rules may touch.
    graph: graph mode or tree mode (``False``: no shared references allowed).
    graph_updates: accepted for Flax's signature; the copy is always a new graph.

  Raises:
    ValueError: a stream matches more than one of split, fork and broadcast.

  >>> from flaxen import nnx
  >>> rngs = nnx.Rngs(params=0, dropout=1)
  >>> new = nnx.with_rngs(rngs, split={'params': 4}, fork=...)
  >>> new.params.key.shape, new.dropout.key.shape, rngs.params.key.shape
  ((4,), (), ())
  """
  del graph_updates
  if node is _MISSING:
    return _decorator(with_rngs, split=split, fork=fork, broadcast=broadcast, only=only,
                      graph=graph)
  originals = dict(_streams(node, only, graph))
  splits, broadcasts = _rules(split), _rules(broadcast)
  forks = [] if fork is None else [(filterlib.to_predicate(fork), None)]
  _check_rules(splits, forks, broadcasts)
  out = clone(node, graph=graph)
  for path, stream in _streams(out, only, graph):
    orig = originals[path]
    found = [(kind, m) for kind, rules in (("split", splits), ("fork", forks),
                                           ("broadcast", broadcasts))
             if (m := _first(rules, path, stream)) is not None]
    if not found:
      continue
    kind, (shape,) = found[0]
    if kind == "broadcast":
      if shape is None:
        continue
      new = orig.broadcast(shape)
      key, count = new.key.value, new.count.value
    else:
      key = orig()
      if kind == "split":
        key = _split(key, shape)
      count = jnp.zeros(key.shape, jnp.uint32)
    stream.key.value, stream.count.value = key, count
  return out


def _check_rules(*groups: list) -> None:
  """The same filter given to two of split / fork / broadcast is ambiguous; a wider one is
  not (split first, then fork, then broadcast: ``fork=...`` takes what split left)."""
  seen: dict = {}
  for kind, rules in zip(("split", "fork", "broadcast"), groups, strict=True):
    for pred, _ in rules:
      other = seen.setdefault(pred, kind)
      if other != kind:
        raise ValueError(f"with_rngs: the filter {pred!r} is given to multiple rules "
                         f"({other} and {kind}); give it to one of split, fork or broadcast")


def fork_rngs(node: Any = _MISSING, /, *, split: Any = None, graph: bool | None = None,
              graph_updates: bool | None = None) -> Any:
  """Gives every Rng stream in ``node`` its next key as a new base key (split where
  ``split`` says: a shape, or ``{filter: shape}``).

  In graph mode with graph updates (the default) the streams change in place and the
  returned ``SplitBackups`` restores them; otherwise ``node`` is left as it is and a
  forked copy is returned (``with_rngs``). Without ``node``, a decorator.

  >>> from flaxen import nnx
  >>> rngs = nnx.Rngs(0)
  >>> before = rngs.default.key.value
  >>> with nnx.fork_rngs(rngs):
  ...   bool(rngs.default.key.value == before)
  False
  """
  if node is _MISSING:
    return _decorator(fork_rngs, split=split, graph=graph, graph_updates=graph_updates)
  if not (resolve_graph(graph) and resolve_graph_updates(graph_updates)):
    return with_rngs(node, split=split, fork=..., graph=graph) if split is None else (
      with_rngs(node, split=split, fork=_unmatched(split), graph=graph))
  splits = _rules(split)

  def new_key(path: tuple, stream: RngStream) -> jax.Array:
    key = stream()
    m = _first(splits, path, stream)
    return key if m is None else _split(key, m[0])

  return _in_place(node, ..., graph, new_key)


def _unmatched(split: Any) -> Any:
  """A filter for the streams that a ``split`` rule leaves to be forked."""
  if not isinstance(split, Mapping):
    return None
  taken = filterlib.Any(*split)
  return filterlib.Not(taken)


def backup_keys(node: Any, /, *, graph: bool | None = None) -> SplitBackups:
  """The keys and counts of every Rng stream in ``node``, to put back with
  ``restore_rngs`` (or on leaving a ``with`` block)."""
  return SplitBackups([(s, s.key.value, s.count.value) for _, s in _streams(node, ..., graph)])


def split_rngs(node: Any = _MISSING, /, *, splits: int | tuple[int, ...], only: Any = ...,
               squeeze: bool = False, graph: bool | None = None,
               graph_updates: bool | None = None) -> Any:
  """Replaces the key of every Rng stream in ``node`` by ``splits`` keys split from it.

  Meant for ``nnx.vmap``/``nnx.scan`` over an axis of that size: each slice then draws from
  its own key. Each stream advances by one draw. In graph mode with graph updates (the
  default) the streams change in place and their old key and count are kept in the
  returned ``SplitBackups`` (a context manager restoring them on exit, also done by
  ``restore_rngs``); otherwise ``node`` is left as it is and a split copy is returned.
  Without ``node``, a decorator that splits the streams found in the function's arguments
  for the duration of each call.

  Args:
    node: a graph object (or pytree of them) holding ``Rngs``.
    splits: the number (or shape) of keys.
    only: a filter selecting the streams (e.g. ``'dropout'``); all by default.
    squeeze: keep a single split key, without the new axis.
    graph: graph mode or tree mode (``False``: no shared references allowed).
    graph_updates: with graph mode, change the streams in place (see above).

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
    return _decorator(split_rngs, splits=splits, only=only, squeeze=squeeze, graph=graph,
                      graph_updates=graph_updates)
  if not (resolve_graph(graph) and resolve_graph_updates(graph_updates)):
    out = with_rngs(node, split=splits, only=only, graph=graph)
    if squeeze:
      for _, stream in _streams(out, only, graph):
        stream.key.value, stream.count.value = stream.key.value[0], stream.count.value[0]
    return out

  def new_key(path: tuple, stream: RngStream) -> jax.Array:
    key = _split(stream(), splits)
    return key[0] if squeeze else key

  return _in_place(node, only, graph, new_key)
