"""intersect_filters: the mutability a lifted transform keeps inside."""

import pytest

from flaxen.core.filters import DenyList, in_filter, intersect_filters

COLS = ("params", "state", "cache", "intermediates")
FILTERS = [True, False, "params", ("params", "state"), ["state", "cache"],
           DenyList("params"), DenyList(("state", "cache"))]


@pytest.mark.parametrize("a", FILTERS)
@pytest.mark.parametrize("b", FILTERS)
def test_matches_exactly_what_both_match(a, b):
  both = intersect_filters(a, b)
  for col in COLS:
    assert in_filter(both, col) == (in_filter(a, col) and in_filter(b, col)), col
