"""orbax's routine logging is silenced during flaxen's calls; errors are not."""

import logging

from flaxen.checkpoint import quiet


def _logged(caplog, logger, level, message):
  caplog.clear()
  logging.getLogger(logger).log(level, message)
  return [r.getMessage() for r in caplog.records]


def test_routine_orbax_logs_are_dropped_only_inside_the_context(caplog):
  caplog.set_level(logging.INFO)
  absl = logging.getLogger("absl")
  level = absl.level
  noise = "_GatheringFuture exception was never retrieved"
  with quiet.orbax_logs():
    assert _logged(caplog, "absl", logging.WARNING, "routine") == []
    assert _logged(caplog, "asyncio", logging.ERROR, noise) == []
    assert _logged(caplog, "absl", logging.ERROR, "real error") == ["real error"]
    assert _logged(caplog, "asyncio", logging.ERROR, "other") == ["other"]
  assert absl.level == level
  assert _logged(caplog, "asyncio", logging.ERROR, noise) == [noise]
  assert _logged(caplog, "absl", logging.WARNING, "routine") == ["routine"]
