"""PrefetchIterator: same items in order, errors re-raised, close, and Flax's deprecation."""

import pytest

from flaxen.training.prefetch_iterator import PrefetchIterator


def make(it, **kw):
  with pytest.warns(DeprecationWarning, match="deprecated"):
    return PrefetchIterator(it, **kw)


@pytest.mark.parametrize("buffer_size", [1, 3])
def test_yields_every_item_in_order(buffer_size):
  assert list(make(iter(range(10)), buffer_size=buffer_size)) == list(range(10))


def test_reraises_the_source_error_after_earlier_items():
  def source():
    yield 1
    yield 2
    raise RuntimeError("disk gone")

  it = make(source())
  assert next(it) == 1 and next(it) == 2
  with pytest.raises(RuntimeError, match="disk gone"):
    next(it)


def test_close_ends_iteration():
  it = make(iter(range(1000)), buffer_size=2)
  assert next(it) == 0
  it.close()
  with pytest.raises(StopIteration):
    next(it)
