"""EarlyStopping: patience and min_delta against a hand-written loop; a pytree under jit."""

import jax
import pytest

from flaxen.training.early_stopping import EarlyStopping


def reference(metrics, min_delta, patience):
  """When to stop, written out: stop at the update that finds > patience bad updates."""
  best, bad, history = None, 0, []
  for m in metrics:
    if best is None or best - m > min_delta:
      best, bad, improved = m, 0, True
    else:
      bad += 1
      improved = False
    history.append((best, bad, bad > patience, improved))
  return history


@pytest.mark.parametrize("patience", [0, 1, 2])
def test_patience_and_min_delta_match_reference(patience):
  metrics = [4.0, 3.0, 3.0005, 2.9995, 3.5, 2.0, 2.0, 2.0, 2.0, 1.0]
  es = EarlyStopping(min_delta=1e-3, patience=patience)
  stopped = False
  for m, (best, bad, stop, improved) in zip(metrics, reference(metrics, 1e-3, patience),
                                            strict=True):
    es = es.update(m)
    stopped = stopped or stop  # once stopped, it stays stopped
    assert (es.best_metric, es.patience_count, es.should_stop, es.has_improved) == (
      best, bad, stopped, improved)


def test_update_is_functional_and_reset_clears_state():
  es = EarlyStopping(patience=0)
  first = es.update(1.0).update(2.0).update(3.0)
  assert first.should_stop and es.best_metric == float("inf")  # es itself unchanged
  fresh = first.reset()
  assert (fresh.best_metric, fresh.patience_count, fresh.should_stop) == (float("inf"), 0, False)
  assert fresh.patience == 0


def test_is_a_pytree():
  es = EarlyStopping(min_delta=0.5, patience=3).update(2.0)
  leaves, treedef = jax.tree_util.tree_flatten(es)
  assert len(leaves) == 6
  assert jax.tree_util.tree_unflatten(treedef, leaves) == es
