"""``flaxen.serialization`` for NNX: a whole ``State`` to and from state dicts and msgpack.

A State's state dict is its pure dict with string keys (list indices become ``"0"``, ``"1"``
...). Restoring pours the values into a copy of the target State: every Variable keeps its
type and metadata and takes the restored value, checked for shape and dtype like any leaf.

>>> from flaxen import nnx, serialization
>>> model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
>>> data = serialization.to_bytes(nnx.state(model))
>>> restored = serialization.from_bytes(nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(1))), data)
>>> bool((restored["kernel"].value == model.kernel.value).all())
True
"""

from __future__ import annotations

from typing import Any

from flaxen import serialization
from flaxen.nnx.state import State
from flaxen.nnx.variables import Variable

__all__: list[str] = []


def _leaf_to_state(x: Any) -> Any:
  if isinstance(x, State):
    return _state_to_state_dict(x)
  return serialization.to_state_dict(x.raw_value if isinstance(x, Variable) else x)


def _state_to_state_dict(state: State) -> dict:
  return {str(k): _leaf_to_state(v) for k, v in state.items()}


def _leaf_from_state(target: Any, value: Any, name: str) -> Any:
  if isinstance(target, State):
    with serialization.at_path(name):
      return _state_from_state_dict(target, value)
  if isinstance(target, Variable):
    return target.replace(serialization.from_state_dict(target.raw_value, value, name=name))
  return serialization.from_state_dict(target, value, name=name)


def _state_from_state_dict(target: State, state: Any) -> State:
  serialization.check_keys(state, [str(k) for k in target], "State")
  return State._wrap({k: _leaf_from_state(v, state[str(k)], str(k)) for k, v in target.items()})


serialization.register_serialization_state(State, _state_to_state_dict, _state_from_state_dict)
