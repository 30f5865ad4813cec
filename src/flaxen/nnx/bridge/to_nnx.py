"""``bridge.ToNNX``: a Linen module used as a stateful NNX module.

Linen creates variables lazily from a sample input, so a ``ToNNX`` starts empty:
``lazy_init(*args)`` (or the first call) runs the Linen ``init`` with keys drawn from the
wrapper's ``Rngs``. Each top-level Linen variable name then becomes an attribute (nested
submodule dicts become ``nnx.Dict``), each leaf a Variable of the collection's type
(``'params'`` -> ``Param``, ``'batch_stats'`` -> ``BatchStat``...). A call gathers them back
into Linen collections, runs ``apply`` with keys drawn from the ``Rngs`` (dropout) and writes
the mutated collections back, so the wrapper behaves like any NNX module under ``nnx.jit``,
``nnx.grad`` and ``nnx.split``/``nnx.merge``.

>>> import jax.numpy as jnp
>>> import flaxen.linen as nn
>>> from flaxen import nnx
>>> from flaxen.nnx import bridge
>>> model = bridge.ToNNX(nn.Dense(4), rngs=nnx.Rngs(0)).lazy_init(jnp.ones((1, 3)))
>>> model.kernel.shape, type(model.bias).__name__, model(jnp.ones((2, 3))).shape
((3, 4), 'Param', (2, 4))
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from flaxen.core import meta
from flaxen.core.filters import DenyList
from flaxen.nnx.bridge.variables import to_linen_var, to_nnx_var, variable_name_from_type
from flaxen.nnx.containers import Dict
from flaxen.nnx.module import Module
from flaxen.nnx.rnglib import Rngs
from flaxen.nnx.variables import Variable

__all__ = ["ToNNX", "lazy_init", "linen_rngs"]


def linen_rngs(rngs: Any) -> dict[str, Any]:
  """Linen ``rngs`` (``{stream: key}``) drawn from an ``nnx.Rngs`` (one key per stream; a
  ``'default'`` stream also serves ``'params'``); a dict or a single key passes through."""
  if rngs is None:
    return {}
  if isinstance(rngs, Rngs):
    keys = {name: stream() for name, stream in rngs.items()}
    if "params" not in keys and "default" in keys:
      keys["params"] = rngs.params()
    return keys
  if isinstance(rngs, Mapping):
    return dict(rngs)
  return {"params": rngs}


def _as_variables(col: str, tree: Any) -> Any:
  if isinstance(tree, Mapping):
    return {k: _as_variables(col, v) for k, v in tree.items()}
  return to_nnx_var(col, tree)


def _collect(node: Any, path: tuple, out: dict) -> None:
  if isinstance(node, Variable):
    col = out.setdefault(variable_name_from_type(type(node), allow_register=True), {})
    for k in path[:-1]:
      col = col.setdefault(k, {})
    col[path[-1]] = to_linen_var(node)
  elif isinstance(node, Mapping):
    for k, v in node.items():
      _collect(v, (*path, k), out)


class ToNNX(Module):
  """Wraps a Linen module as an NNX module.

  Args:
    module: the Linen module (unbound).
    rngs: the ``nnx.Rngs`` that init and calls draw their Linen keys from.
  """

  def __init__(self, module: Any, rngs: Rngs | None = None):
    # prefixed names, as Flax has them: they cannot clash with the Linen variables' names
    self.to_nnx__module = module
    self.to_nnx__rngs = rngs
    self.linen_attributes: tuple[str, ...] | None = None

  @property
  def module(self) -> Any:
    """The wrapped Linen module (``to_nnx__module``; Flax deprecates this name)."""
    return self.to_nnx__module

  @property
  def rngs(self) -> Rngs | None:
    """The ``Rngs`` (``to_nnx__rngs``; Flax deprecates this name)."""
    return self.to_nnx__rngs

  def __getattr__(self, name: str) -> Any:
    # only reached when normal lookup failed: a method of the Linen module, run by apply
    module = self.__dict__.get("to_nnx__module")
    if module is not None and not name.startswith("_") and callable(
        getattr(type(module), name, None)):
      return functools.partial(self.__call__, method=name)
    raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

  def lazy_init(self, *args: Any, **kwargs: Any) -> ToNNX:
    """Creates the variables by running the Linen ``init`` on sample inputs; returns self."""
    variables = self.to_nnx__module.init(linen_rngs(self.to_nnx__rngs), *args, **kwargs)
    names = []
    for col, tree in variables.items():
      self._write(col, tree, names)
    self.linen_attributes = tuple(names)
    return self

  def _write(self, col: str, tree: Mapping, names: list) -> None:
    """Puts ``tree`` (one collection) into the attributes: new values into existing
    Variables, new Variables (and dicts) where there are none."""
    for name, value in tree.items():
      if name not in names:
        names.append(name)
      _merge_into(self, name, col, value)

  def linen_variables(self) -> dict[str, Any]:
    """The wrapped module's variables as Linen collections (``{'params': ..., ...}``)."""
    out: dict[str, Any] = {}
    for name in self.linen_attributes or ():
      _collect(self.__dict__.get(name), (name,), out)  # absent once nnx.pop took it
    return out

  def __call__(self, *args: Any, rngs: Any = None, method: Any = None, mutable: Any = None,
               **kwargs: Any) -> Any:
    """Runs the Linen ``apply`` with this module's variables and returns its output.

    Args:
      *args: the inputs (the first call initializes the variables from them).
      rngs: ``nnx.Rngs``, a dict of keys or one key to use instead of ``self.rngs``.
      method: the Linen method to run (default ``__call__``).
      mutable: the collections ``apply`` may change; by default all but ``'params'``. The
        changed collections are written back into this module.
      **kwargs: keyword inputs.
    """
    if self.linen_attributes is None:
      self.lazy_init(*args, method=method, **kwargs)
    mutable = DenyList("params") if mutable is None else mutable
    out = self.to_nnx__module.apply(self.linen_variables(), *args,
                                    rngs=linen_rngs(self.to_nnx__rngs if rngs is None else rngs),
                            method=method, mutable=mutable, **kwargs)
    if mutable is False:
      return out
    out, updates = out
    names = list(self.linen_attributes)
    for col, tree in updates.items():
      self._write(col, tree, names)
    if len(names) != len(self.linen_attributes):
      self.linen_attributes = tuple(names)
    return out


def _merge_into(parent: Any, key: Any, col: str, value: Any) -> None:
  is_dict = isinstance(parent, Dict)
  node = parent.get(key) if is_dict else parent.__dict__.get(key)
  if node is None or isinstance(node, Variable) == isinstance(value, Mapping):
    new = _as_variables(col, value)
    if is_dict:
      parent[key] = new
    else:
      setattr(parent, key, new)
  elif isinstance(node, Variable):
    node.value = value.unbox() if meta.is_axis_metadata(value) else value
  else:
    for k, v in value.items():
      _merge_into(node, k, col, v)


def lazy_init(fn: Any, *args: Any, **kwargs: Any) -> Any:
  """Initializes every ``ToNNX`` in ``fn`` from sample inputs and returns ``fn``.

  A ``ToNNX`` runs its own ``lazy_init``; another module is called once on the inputs, which
  initializes the ``ToNNX`` submodules it reaches.
  """
  if isinstance(fn, ToNNX):
    return fn.lazy_init(*args, **kwargs)
  fn(*args, **kwargs)
  return fn
