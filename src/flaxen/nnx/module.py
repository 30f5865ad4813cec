"""``nnx.Module``: the base class of NNX layers and models.

A Module is a plain Python object: ``__init__`` creates its Variables and submodules as
attributes, ``__call__`` uses them, and state is mutated in place. Transforms and the
functional API (``nnx.split``/``nnx.merge``) see it as a graph node.

>>> import jax.numpy as jnp
>>> from flaxen import nnx
>>> class Counter(nnx.Module):
...   def __init__(self):
...     self.count = nnx.BatchStat(jnp.array(0))
...     self.deterministic = False
...   def __call__(self, x):
...     self.count.value += 1
...     self.sow(nnx.Intermediate, "seen", x)
...     return x
>>> m = Counter()
>>> _ = m(1.0); _ = m(2.0)
>>> m.count.value, m.seen.value
(Array(2, dtype=int32, weak_type=True), (1.0, 2.0))
>>> m.eval().deterministic
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import jax.numpy as jnp

from flaxen.errors.nnx import AttributeNotFoundError
from flaxen.errors.nnx_tree import NotAPytreeError
from flaxen.nnx import filterlib
from flaxen.nnx.graph_mode import set_graph_mode
from flaxen.nnx.graphlib import iter_graph
from flaxen.nnx.object import Object
from flaxen.nnx.variables import Perturbation, Variable

__all__ = ["Module", "iter_modules", "iter_children", "iter_module_children"]

M = TypeVar("M", bound="Module")


def _tuple_append(xs: tuple, x: Any) -> tuple:
  return (*xs, x)


def _empty() -> tuple:
  return ()


# nnx.capture's boxes: while a capture runs, each Module of the graph holds one Variable of
# each captured type, under the name given here, whose value is a dict {name: sown value}.
# sow and perturb write into it, so what they store is a Variable update, which every
# transform carries back (a new attribute would need graph updates).
CAPTURE_BOXES: dict[type, str] = {}


def _box(module: Module, variable_type: type) -> Variable | None:
  name = CAPTURE_BOXES.get(variable_type)
  box = module.__dict__.get(name) if name is not None else None
  return box if type(box) is variable_type else None


class Module(Object):
  """Base class of NNX modules."""

  _nnx_listed = True  # False: a container flaxen made from a plain list/dict (not a Module
  # in Flax), which iter_modules / iter_children skip

  def sow(self, variable_type: type[Variable], name: str, value: Any,
          reduce_fn: Callable[[Any, Any], Any] = _tuple_append,
          init_fn: Callable[[], Any] = _empty) -> None:
    """Stores ``value`` in a Variable ``name`` of ``variable_type``, reducing repeated calls.

    The default reduction appends to a tuple. Collect them with ``nnx.pop(model,
    nnx.Intermediate)``.
    """
    var = self.__dict__.get(name)
    if isinstance(var, variable_type):
      var.value = reduce_fn(var.value, value)
      return
    box = _box(self, variable_type) if CAPTURE_BOXES else None
    if box is not None:  # inside nnx.capture
      sown = box.value
      box.value = {**sown, name: reduce_fn(sown[name] if name in sown else init_fn(), value)}
    else:
      setattr(self, name, variable_type(reduce_fn(init_fn(), value)))

  def perturb(self, name: str, value: Any,
              variable_type: type[Variable] = Perturbation) -> Any:
    """Adds a zero-valued Variable ``name`` to ``value``, so ``nnx.grad`` w.r.t. it gives
    the gradient at this intermediate."""
    var = self.__dict__.get(name)
    if isinstance(var, variable_type):
      return value + var.value
    box = _box(self, variable_type) if CAPTURE_BOXES else None
    if box is not None:  # inside nnx.capture (init's perturbations are in the box)
      sown = box.value
      if name not in sown:
        box.value = sown = {**sown, name: jnp.zeros_like(value)}
      return value + sown[name]
    setattr(self, name, variable_type(jnp.zeros_like(value)))
    return value + getattr(self, name).value

  def iter_modules(self, *, graph: bool | None = None) -> Iterator[tuple[tuple, Module]]:
    """Yields ``(path, module)`` for this module and every submodule, children first."""
    return iter_modules(self, graph=graph)

  def iter_children(self, *, graph: bool | None = None) -> Iterator[tuple[Any, Module]]:
    """Yields ``(name, module)`` for the direct submodules."""
    return iter_children(self, graph=graph)

  def set_attributes(self, *filters: Any, raise_if_not_found: bool = True,
                     graph: bool | None = None, **attributes: Any) -> None:
    """Sets ``attributes`` on every submodule (matching ``filters``) that has them.

    Raises:
      AttributeNotFoundError: some attribute was found on no submodule and
        ``raise_if_not_found`` is set.
    """
    predicate = filterlib.Any(*filters) if filters else filterlib.Everything()
    found: set[str] = set()
    for path, module in iter_modules(self, graph=graph):
      if not predicate(path, module):
        continue
      for name, value in attributes.items():
        if hasattr(module, name):
          setattr(module, name, value)
          found.add(name)
    missing = [n for n in attributes if n not in found]
    if missing and raise_if_not_found:
      raise AttributeNotFoundError(missing, self)

  def train(self: M, **attributes: Any) -> M:
    """Training mode: ``deterministic=False``, ``use_running_average=False``."""
    self.set_attributes(deterministic=False, use_running_average=False,
                        **attributes, raise_if_not_found=False)
    return self

  def eval(self: M, **attributes: Any) -> M:
    """Evaluation mode: ``deterministic=True``, ``use_running_average=True``."""
    self.set_attributes(deterministic=True, use_running_average=True,
                        **attributes, raise_if_not_found=False)
    return self


def iter_modules(module: Any, /, *, graph: bool | None = None
                 ) -> Iterator[tuple[tuple, Module]]:
  """Yields ``(path, module)`` for every Module in the graph, children before parents.

  ``graph=False`` (tree mode) raises ``SharedReferenceError`` on a shared Module.
  """
  for path, value in iter_graph(module, graph=graph):
    if isinstance(value, Module) and value._nnx_listed:
      yield path, value


def iter_children(node: Any, /, *, graph: bool | None = None) -> Iterator[tuple[Any, Module]]:
  """Yields ``(name, module)`` for the Modules held directly by ``node``, by name.

  ``graph=False`` (tree mode) raises ``NotAPytreeError`` for a ``pytree=False`` class.
  """
  if graph is False or (graph is None and not set_graph_mode.current_value()):
    if not getattr(type(node), "_nnx_pytree", True):
      raise NotAPytreeError(type(node), ())
  for name, value in node._graph_items():
    if isinstance(value, Module) and value._nnx_listed:
      yield name, value


iter_module_children = iter_children
