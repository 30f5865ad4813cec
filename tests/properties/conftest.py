"""Hypothesis profiles of the property suites: ``ci`` for every run, ``slow`` for
``@pytest.mark.slow`` variants (make test-slow). Suites decorate their tests with
``settings.get_profile(...)`` so that other test files keep their own settings."""

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("ci", max_examples=200, **_COMMON)
settings.register_profile("slow", max_examples=2000, **_COMMON)
