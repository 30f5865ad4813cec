"""Helpers of ``pmap``-era data-parallel code, on today's JAX.

``replicate`` / ``prefetch_to_device`` lay arrays out with ``jax.device_put`` and a
``NamedSharding`` over a one-axis mesh (JAX deprecates ``device_put_replicated`` and
``device_put_sharded``); the result has a leading device axis, as ``pmap`` expects.

>>> import jax.numpy as jnp
>>> from flaxen import jax_utils
>>> tree = {"w": jnp.arange(3.0)}
>>> replicated = jax_utils.replicate(tree)
>>> replicated["w"].shape[0] == jax.local_device_count()
True
>>> jax_utils.unreplicate(replicated)["w"]
Array([0., 1., 2.], dtype=float32)
"""

from __future__ import annotations

import collections
import functools
import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
  "replicate", "unreplicate", "pmean", "partial_eval_by_shape", "prefetch_to_device",
  "scan_in_dim", "pad_shard_unpad",
]


def _stacked_on(devices: Sequence[jax.Device], axis_name: str, stack: Callable) -> Callable:
  """A function putting ``stack(x)`` (leading axis = one row per device) on ``devices``."""
  mesh = jax.sharding.Mesh(np.array(devices), (axis_name,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis_name))

  def put(x):
    # jnp keeps jax arrays (and their dtype) on device; numpy input stays on the host.
    return jax.device_put((jnp if isinstance(x, jax.Array) else np).stack(stack(x)), sharding)

  return put


def replicate(tree: Any, devices: Sequence[jax.Device] | None = None,
              axis_name: str = "_device_put_sharded") -> Any:
  """Copies every array of ``tree`` onto each device, stacked along a new leading axis.

  Args:
    tree: a pytree of arrays (or numbers).
    devices: the devices to copy to; default ``jax.local_devices()`` (``pmap``'s order).
    axis_name: the name of the mesh axis of the resulting sharding.

  Returns:
    The pytree with leaves of shape ``(len(devices), *x.shape)``, row ``i`` on device ``i``.
  """
  devices = list(devices or jax.local_devices())
  return jax.tree_util.tree_map(_stacked_on(devices, axis_name, lambda x: [x] * len(devices)),
                                tree)


def _first_replica(x: Any) -> Any:
  if getattr(x, "ndim", None) == 0:
    return x
  sharding = getattr(x, "sharding", None)
  if sharding is None or len(sharding.device_set) == 1:
    return x[0]
  # The first device's local shard: no gather across devices, unlike x[0]. An array
  # replicated whole on every device (a pmap output with out_axes=None) is its own replica.
  shard = x.addressable_shards[0].data
  return shard if sharding.is_fully_replicated else shard[0]


def unreplicate(tree: Any) -> Any:
  """The first replica of each array of a :func:`replicate`-d (or ``pmap``-ed) tree."""
  return jax.tree_util.tree_map(_first_replica, tree)


def pmean(xs: Any, axis_name: Any) -> Any:
  """Deprecated (as in Flax): ``jax.lax.pmean(xs, axis_name)``."""
  warnings.warn("flaxen.jax_utils.pmean is deprecated, as in Flax: use jax.lax.pmean",
                DeprecationWarning, stacklevel=2)
  return jax.lax.pmean(xs, axis_name)


def _spec_struct(spec: Any) -> jax.ShapeDtypeStruct:
  """``shape`` or ``(shape, dtype)`` as a ShapeDtypeStruct (float32 by default)."""
  spec = tuple(spec)
  if len(spec) == 2 and isinstance(spec[0], Iterable):
    return jax.ShapeDtypeStruct(tuple(spec[0]), spec[1])
  return jax.ShapeDtypeStruct(spec, jnp.float32)


def _independent_outputs(closed: Any) -> list[bool]:
  """For each output of a jaxpr, whether it is computed without reading any input."""
  jaxpr = closed.jaxpr
  tainted = {id(v) for v in jaxpr.invars}
  for eqn in jaxpr.eqns:  # an inner jaxpr counts as one step: conservative, never wrong
    if any(id(v) in tainted for v in eqn.invars):
      tainted.update(id(v) for v in eqn.outvars)
  return [id(v) not in tainted for v in jaxpr.outvars]


def partial_eval_by_shape(fn: Callable, input_spec: Iterable[Any], *args, **kwargs) -> Any:
  """Evaluates the outputs of ``fn`` that do not depend on its inputs' values.

  Like ``jax.eval_shape``, but an output computed without reading the inputs (e.g. the
  variables that ``model.init`` creates from a key) comes back as its value; the others
  come back as ``jax.ShapeDtypeStruct``.

  Args:
    fn: called as ``fn(*inputs, *args, **kwargs)``.
    input_spec: one ``shape`` or ``(shape, dtype)`` per input (dtype default float32).
    *args: further positional arguments, passed as they are.
    **kwargs: keyword arguments, passed as they are.

  Returns:
    ``fn``'s output tree with values where they do not depend on the inputs.
  """
  structs = [_spec_struct(spec) for spec in input_spec]
  f = lambda *inputs: fn(*inputs, *args, **kwargs)
  closed, out_shape = jax.make_jaxpr(f, return_shape=True)(*structs)
  leaves, treedef = jax.tree_util.tree_flatten(out_shape)
  known = _independent_outputs(closed)
  if any(known):
    # Zeros stand in for the inputs: the outputs kept below never read them.
    zeros = [jnp.zeros(s.shape, s.dtype) for s in structs]
    values = jax.tree_util.tree_leaves(jax.jit(f)(*zeros))
    leaves = [v if k else s for v, k, s in zip(values, known, leaves, strict=True)]
  return jax.tree_util.tree_unflatten(treedef, leaves)


def prefetch_to_device(iterator: Iterable[Any], size: int,
                       devices: Sequence[jax.Device] | None = None,
                       axis_name: str = "_device_put_sharded") -> Iterator[Any]:
  """Yields the items of ``iterator`` with each array split over ``devices`` ahead of use.

  Each leaf's leading axis must equal ``len(devices)`` (e.g. after
  ``common_utils.shard``); row ``i`` goes to device ``i``. Up to ``size`` items are
  transferred before they are needed, so the copy overlaps the previous step.

  Args:
    iterator: yields pytrees of arrays with a leading device axis.
    size: how many items to keep on the devices ahead of use (2 suits GPUs).
    devices: the devices; default ``jax.local_devices()``.
    axis_name: the name of the mesh axis of the resulting sharding.
  """
  devices = list(devices or jax.local_devices())
  put = _stacked_on(devices, axis_name, list)
  queue: collections.deque = collections.deque()
  iterator = iter(iterator)

  def enqueue(n: int) -> None:
    for item in itertools.islice(iterator, n):
      queue.append(jax.tree_util.tree_map(put, item))

  enqueue(size)
  while queue:
    yield queue.popleft()
    enqueue(1)


def _scan_nested(body_fn: Callable, init: Any, xs: Any, unroll: tuple[int, ...]):
  """``lax.scan`` over the first ``len(unroll)`` axes of ``xs``, outermost first."""
  if len(unroll) == 1:
    return jax.lax.scan(body_fn, init, xs, unroll=unroll[0])
  inner = lambda c, x: _scan_nested(body_fn, c, x, unroll[1:])
  return jax.lax.scan(inner, init, xs, unroll=unroll[0])


def scan_in_dim(body_fn: Callable, init: Any, xs: Any, axis: int | Sequence[int] = (0,),
                unroll: int | Sequence[int] = (1,), keepdims: bool = False):
  """``lax.scan`` along arbitrary axes of ``xs`` (several axes: nested scans).

  Args:
    body_fn: ``(carry, x) -> (carry, y)``.
    init: the initial carry.
    xs: a pytree of arrays to scan over.
    axis: the axis, or axes (outermost loop first), to scan along.
    unroll: unroll factor per axis; a shorter tuple is padded with 1s on the left, so
      ``unroll=5`` unrolls the innermost loop.
    keepdims: whether ``body_fn`` sees (and returns) the scanned axes with size 1.

  Returns:
    ``(carry, ys)``, ``ys`` having the scanned axes where ``xs`` had them.
  """
  axis = tuple(axis) if isinstance(axis, Iterable) else (axis,)
  unroll = tuple(unroll) if isinstance(unroll, Iterable) else (unroll,)
  unroll = (1,) * (len(axis) - len(unroll)) + unroll

  def order(ndim: int) -> tuple[int, ...]:
    front = tuple(a % ndim for a in axis)  # negative axes count from each leaf's end
    return front + tuple(d for d in range(ndim) if d not in front)

  def to_front(x):
    return jnp.transpose(x, order(x.ndim))

  def to_place(x):
    return jnp.transpose(x, np.argsort(order(x.ndim)))

  def body(carry, x):
    if keepdims:
      x = jax.tree_util.tree_map(lambda a: to_place(a.reshape((1,) * len(axis) + a.shape)), x)
    carry, y = body_fn(carry, x)
    if keepdims:
      y = jax.tree_util.tree_map(lambda a: to_front(a)[(0,) * len(axis)], y)
    return carry, y

  carry, ys = _scan_nested(body, init, jax.tree_util.tree_map(to_front, xs), unroll)
  return carry, jax.tree_util.tree_map(to_place, ys)


def pad_shard_unpad(wrapped: Callable, static_argnums: Sequence[int] = (0,),
                    static_argnames: Sequence[str] = (), static_return: bool = False):
  """Wraps a ``pmap``-ed function so that it takes batches of any size.

  The wrapper zero-pads each non-static argument's leading (batch) axis to a multiple of
  ``jax.local_device_count()``, reshapes it to ``(devices, batch/devices, ...)``, calls
  ``wrapped``, then (unless ``static_return``) merges the two leading axes of the result
  on the host and drops the padding. It also takes a keyword ``min_device_batch``: pad
  each device's share to at least this many rows (fewer recompilations for the last,
  smaller batch).

  Args:
    wrapped: called as ``wrapped(*args, **kwargs)``, usually a ``jax.pmap``-ed step.
    static_argnums: positions of arguments passed unchanged (default: the params).
    static_argnames: names of keyword arguments passed unchanged.
    static_return: return ``wrapped``'s result as it is (e.g. already reduced metrics).

  >>> import jax, numpy as np
  >>> from flaxen import jax_utils
  >>> f = jax_utils.pad_shard_unpad(jax.pmap(lambda w, x: x * w, in_axes=(None, 0)))
  >>> f(2.0, np.arange(3.0))
  array([0., 2., 4.], dtype=float32)
  """

  @functools.wraps(wrapped)
  def run(*args, min_device_batch: int | None = None, **kwargs):
    devices = jax.local_device_count()
    # (value, whether it is padded) for every argument, positional then keyword.
    marked = [(a, i not in static_argnums) for i, a in enumerate(args)]
    marked_kw = {k: (v, k not in static_argnames) for k, v in kwargs.items()}
    sizes = {leaf.shape[0] for a, p in [*marked, *marked_kw.values()] if p
             for leaf in jax.tree_util.tree_leaves(a)}
    if len(sizes) != 1:
      raise ValueError(f"pad_shard_unpad: the padded arguments have batch sizes {sorted(sizes)}"
                       "; they must all have the same leading size.")
    batch = sizes.pop()
    per_device = max(-(-batch // devices), min_device_batch or 0)

    def pad(x):
      x = np.asarray(x)
      fill = np.zeros((devices * per_device - batch, *x.shape[1:]), x.dtype)
      return np.concatenate([x, fill]).reshape(devices, per_device, *x.shape[1:])

    def pad_tree(tree, do):
      return jax.tree_util.tree_map(pad, tree) if do else tree

    out = wrapped(*(pad_tree(a, p) for a, p in marked),
                  **{k: pad_tree(v, p) for k, (v, p) in marked_kw.items()})
    if static_return:
      return out

    def unpad(x):
      x = jax.device_get(x)  # merge on the host: one device shape whatever the batch
      return x.reshape(-1, *x.shape[2:])[:batch]

    return jax.tree_util.tree_map(unpad, out)

  return run
