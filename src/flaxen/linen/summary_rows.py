"""Flax's ``summary.Row`` / ``summary.Table``: one recorded module call, and the calls of
one model with the collections counted. ``nn.tabulate`` renders its own rows; these types
are for programs that build or inspect Flax-style tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from flaxen import summary_table as st

__all__ = ["Row", "Table"]


@dataclasses.dataclass
class Row:
  """One module method call.

  Attributes:
    path: the module's path from the root.
    module_copy: an unbound copy of the module.
    method: the method called.
    inputs, outputs: the call's arguments and result (arrays or their shapes).
    module_variables: ``{collection: variables}`` the module owns.
    counted_variables: ``{collection: variables}`` counted on this row (its own, plus its
      descendants' when deeper rows are folded into it).
    flops, vjp_flops: the call's estimated FLOPs (forward, forward + backward), if computed.
  """

  path: tuple[str, ...]
  module_copy: Any
  method: str
  inputs: Any
  outputs: Any
  module_variables: dict[str, dict[str, Any]]
  counted_variables: dict[str, dict[str, Any]]
  flops: float | None = None
  vjp_flops: float | None = None

  def size_and_bytes(self, collections: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``{collection: (number of elements, bytes)}`` of the counted variables."""
    return {col: st.size_and_bytes(self.counted_variables.get(col, {})) for col in collections}


class Table(list):
  """The rows of one model's table, with the model and the collections it counts."""

  def __init__(self, module: Any, collections: Sequence[str], rows: Iterable[Row]):
    super().__init__(rows)
    self.module = module
    self.collections = list(collections)
