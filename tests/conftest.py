"""Hypothesis profiles: ``ci`` (fast, the default in CI), ``dev`` (default locally), ``nightly`` (thorough).

Select with the environment variable HYPOTHESIS_PROFILE.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# The proof cache (derive.proof_cache) is off in the tests, for this process and the commands it starts: a verdict
# replayed from an earlier test (or an earlier run) would make results depend on order, and a test that patches
# the grounding in memory would not change the cache's key. tests/test_proof_cache.py turns it on in a tmp_path.
import tempfile as _tempfile

os.environ["PGVERIFY_NO_CACHE"] = "1"
os.environ["PGVERIFY_CACHE_DIR"] = _tempfile.mkdtemp(prefix="pgverify-test-cache-")


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker per core this process may use, at most 4: each worker imports
    numpy, SymPy and (with the extras) torch and jax, and most tests start processes of their own."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))
