"""``bridge.ToLinen`` / ``bridge.to_linen``: an NNX module class used as a Linen module.

``init`` builds the NNX module with ``Rngs`` seeded from the Linen rng streams and stores
its state as Linen variables, each Variable in the collection of its type (``Param`` ->
``'params'``, ``BatchStat`` -> ``'batch_stats'``...) under its NNX path. ``apply`` rebuilds
the module from those variables (its structure from ``nnx.eval_shape``, so no initializer
runs), gives its Rng streams fresh keys from the Linen streams, calls it, and writes the
Variables of the mutable collections back (changes to Variables of immutable collections
are dropped, as in Flax). A Variable with metadata (axis names...) is stored in an
``NNXMeta`` box. Other methods of the NNX class run through ``nnx_method=`` or as attributes
of the wrapper (``model.apply(v, x, method=...)`` inside a Linen parent).

>>> import jax, jax.numpy as jnp
>>> from flaxen import nnx
>>> from flaxen.nnx import bridge
>>> model = bridge.to_linen(nnx.Linear, 3, 4)
>>> variables = model.init(jax.random.key(0), jnp.ones((1, 3)))
>>> jax.tree.map(jnp.shape, variables)
{'params': {'bias': (4,), 'kernel': (3, 4)}}
>>> model.apply(variables, jnp.ones((2, 3))).shape
(2, 4)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flaxen import linen
from flaxen.core import meta
from flaxen.core.frozen_dict import FrozenDict
from flaxen.errors.nnx import BridgeVariableError
from flaxen.nnx.bridge.variables import to_linen_var, variable_name_from_type
from flaxen.nnx.graphlib import merge, split, state
from flaxen.nnx.rnglib import RngCount, RngKey, Rngs, RngState
from flaxen.nnx.state import from_flat_state
from flaxen.nnx.transforms.eval_shape import eval_shape

__all__ = ["ToLinen", "to_linen"]


class ToLinen(linen.Module):
  """Wraps an NNX module class as a Linen module.

  Attributes:
    nnx_class: the NNX module class (or any callable returning an NNX module).
    args: positional arguments of its constructor.
    kwargs: keyword arguments of its constructor.
    skip_rng: do not pass ``rngs=`` to the constructor.
    metadata_fn: turns each NNX Variable into the value stored in its Linen collection
      (default: the value, in an ``NNXMeta`` box when the Variable has metadata).
  """

  nnx_class: Callable[..., Any]
  args: tuple = ()
  kwargs: Mapping[str, Any] = FrozenDict({})
  skip_rng: bool = False
  metadata_fn: Callable[[Any], Any] | None = to_linen_var

  def _construct(self, rngs: Rngs | None) -> Any:
    kwargs = dict(self.kwargs or {})
    if not self.skip_rng:
      kwargs["rngs"] = rngs
    return self.nnx_class(*self.args, **kwargs)

  def _rngs(self) -> Rngs:
    names = list(self.scope.root.rngs)
    keys = {name: self.make_rng(name) for name in names}
    if "default" not in keys and "params" in keys:
      keys["default"] = self.make_rng("params")
    return Rngs(**keys)

  def __call__(self, *args: Any, nnx_method: str | Callable[..., Any] | None = None,
               **kwargs: Any) -> Any:
    """Builds (at init) or rebuilds the NNX module and calls it on the inputs.

    Args:
      *args: the inputs.
      nnx_method: the NNX module's method to call instead of ``__call__`` (a name, or a
        function taking the module first).
      **kwargs: keyword inputs.
    """
    if self.is_initializing():
      module = self._construct(self._rngs())
      self._store(module, initializing=True)
    else:
      module = self._rebuild()
    if nnx_method is None:
      out = module(*args, **kwargs)
    elif isinstance(nnx_method, str):
      out = getattr(module, nnx_method)(*args, **kwargs)
    else:
      out = nnx_method(module, *args, **kwargs)
    if not self.is_initializing():  # init keeps the state from before the call, as built
      self._store(module, initializing=False)
    return out

  def __getattr__(self, name: str) -> Any:
    # only reached when normal lookup failed: a method of the NNX class runs as nnx_method
    try:
      return super().__getattr__(name)
    except AttributeError:
      cls = self.__dict__.get("nnx_class")
      if cls is None or name.startswith("_") or not callable(getattr(cls, name, None)):
        raise
    return functools.partial(self.__call__, nnx_method=name)

  def _rebuild(self) -> Any:
    """The module rebuilt from the Linen variables."""
    streams = self.scope.root.rngs
    abstract = eval_shape(lambda: self._construct(Rngs(0, **{n: 0 for n in streams})))
    graphdef, abstract_state = split(abstract)
    leaves = []
    for path, var in abstract_state.flat_state():
      if isinstance(var, RngKey):
        usable = var.tag in streams or "params" in streams  # Linen's fallback stream
        value = self.make_rng(var.tag) if usable else jax.random.key(0)
        if var.value.shape:
          value = jax.random.split(value, var.value.shape)
      elif isinstance(var, RngCount):
        value = jnp.zeros(var.value.shape, jnp.uint32)
      else:
        col = variable_name_from_type(type(var), allow_register=True)
        value = self.get_variable(col, str(path[0]))
        for k in path[1:]:
          if not isinstance(value, Mapping) or str(k) not in value:
            value = None
            break
          value = value[str(k)]
        if value is None:
          raise BridgeVariableError(getattr(self.nnx_class, "__name__", "?"), col, path)
        if meta.is_axis_metadata(value):
          value = value.unbox()
      leaves.append((path, var.replace(value)))
    return merge(graphdef, from_flat_state(leaves))

  def _store(self, module: Any, initializing: bool) -> None:
    """Writes the module's Variables (but its Rng state) into the Linen collections: all of
    them at init, those of the mutable collections after a call (changes to the others are
    dropped, as Flax drops them)."""
    trees: dict[tuple[str, str], Any] = {}
    for path, var in state(module).flat_state():
      if isinstance(var, RngState):
        continue
      col = variable_name_from_type(type(var), allow_register=True)
      if not initializing and not self.is_mutable_collection(col):
        continue
      key = (col, str(path[0]))
      value = (self.metadata_fn or to_linen_var)(var)
      if len(path) == 1:
        trees[key] = value
        continue
      node = trees.setdefault(key, {})
      for k in path[1:-1]:
        node = node.setdefault(str(k), {})
      node[str(path[-1])] = value
    for (col, name), value in trees.items():
      self.put_variable(col, name, value)


def to_linen(nnx_class: Callable[..., Any], *args: Any,
             metadata_fn: Callable[[Any], Any] | None = to_linen_var, name: str | None = None,
             skip_rng: bool = False, abstract_init: bool = True, **kwargs: Any) -> ToLinen:
  """``ToLinen(nnx_class, args=args, kwargs=kwargs)``: the Linen module of an NNX class.

  ``abstract_init`` is accepted for Flax's signature: flaxen always rebuilds the module
  abstractly (``nnx.eval_shape``) outside init, and builds it for real at init.

  >>> import jax, jax.numpy as jnp
  >>> from flaxen import nnx
  >>> from flaxen.nnx import bridge
  >>> drop = bridge.to_linen(nnx.Dropout, rate=0.5)
  >>> y = drop.apply({}, jnp.ones(4), rngs={"dropout": jax.random.key(1)})
  >>> sorted(set(y.tolist()))
  [0.0, 2.0]
  """
  return ToLinen(nnx_class, args=args, kwargs=FrozenDict(kwargs), skip_rng=skip_rng,
                 metadata_fn=metadata_fn or to_linen_var, name=name)
