"""The sampler's compiled kernel (numba, optional) against its numpy path: the same episodes bit for bit.

A seed must give the same episodes whether or not ``pgverify[fast]`` is installed, so every field of every
batch (the step list, the lengths, the final states and the padded arrays built from them) and the generator's
state afterwards are compared exactly, on the alias and the keys layouts, horizon-null and finite-horizon
problems, several chunks and several bit generators. The comparisons skip when numba is not installed (the
README's test command does not install it; CI installs the ``fast`` extra). Errors (the work limit, gamma = 1
episodes that outlive the step cap) must be the same too. ``PGVERIFY_NUMBA=1`` forces the kernel for these small
runs (by default a process loads it only for runs that pay for its loading), ``PGVERIFY_NO_NUMBA=1`` the numpy
path. numba is never imported at start-up.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from verify.builtin import builtin_examples
from verify.errors import UsageError
from verify.mdp import TabularMDP
from verify.model.io import Limits, limits_scope
from verify.policy import TabularSoftmax
from verify import sampler as sampler_module
from verify.sampler import iter_episode_chunks

from helpers import random_problem

ROOT = Path(__file__).resolve().parents[1]

numba = pytest.importorskip("numba", reason="the compiled kernel needs numba (pip install pgverify[fast])")

PROBLEMS = {
    "chain": lambda: (builtin_examples()["chain"].mdp, builtin_examples()["chain"].policy),
    "gridworld": lambda: (builtin_examples()["gridworld"].mdp, builtin_examples()["gridworld"].policy),
    "random H=6": lambda: random_problem(7, S=5, A=3, H=6, terminal=2),
    "random horizon null": lambda: random_problem(3, S=4, A=2, H=None, gamma=0.8),
}


def sample(mdp, policy, n, rng, *, compiled, monkeypatch, chunk=None, max_steps=None):
    """All batches of one ``iter_episode_chunks`` run on the chosen path."""
    if compiled:
        monkeypatch.delenv("PGVERIFY_NO_NUMBA", raising=False)
        monkeypatch.setenv("PGVERIFY_NUMBA", "1")                # even for runs too small to pay for loading it
        assert sampler_module.compiled_kernel(0) is not None     # the comparison must compare two paths
    else:
        monkeypatch.setenv("PGVERIFY_NO_NUMBA", "1")
        assert sampler_module.compiled_kernel() is None
    return list(iter_episode_chunks(mdp, policy, n, rng, chunk=chunk, max_steps=max_steps))


def assert_same_batches(fast, slow):
    assert len(fast) == len(slow)
    for i, (x, y) in enumerate(zip(fast, slow)):
        for name in ("n", "t", "s", "a", "r", "lengths"):
            u, v = getattr(x.steps, name), getattr(y.steps, name)
            assert u.dtype == v.dtype and u.shape == v.shape, (i, name, u.dtype, v.dtype, u.shape, v.shape)
            bad = np.flatnonzero(u != v)
            assert bad.size == 0, f"batch {i}, steps.{name}: first difference at {bad[0]}: {u[bad[0]]} vs {v[bad[0]]}"
        for name in ("s_t", "a_t", "r_t", "lengths"):
            u, v = getattr(x, name), getattr(y, name)
            assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v), (i, name)


@pytest.mark.parametrize("layout", ["alias", "keys"])
@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("seed", [0, 1, 2024])
def test_compiled_kernel_gives_the_numpy_paths_episodes_bit_for_bit(name, seed, layout, monkeypatch):
    if layout == "keys":
        monkeypatch.setattr(sampler_module, "ALIAS_MAX_WIDTH", 0)
    mdp, policy = PROBLEMS[name]()
    runs = []
    for compiled in (True, False):
        rng = np.random.default_rng(seed)
        runs.append((sample(mdp, policy, 700, rng, compiled=compiled, monkeypatch=monkeypatch, chunk=300),
                     rng.bit_generator.state))
    (fast, fast_state), (slow, slow_state) = runs
    assert_same_batches(fast, slow)
    assert fast_state == slow_state     # the stream continues where numpy's would: later draws agree too
    assert sum(b.n for b in fast) == 700


@pytest.mark.parametrize("bit_generator", [np.random.MT19937, np.random.Philox, np.random.SFC64, np.random.PCG64DXSM])
def test_any_bit_generator_gives_the_same_episodes(bit_generator, monkeypatch):
    mdp, policy = PROBLEMS["gridworld"]()
    runs = []
    for compiled in (True, False):
        rng = np.random.Generator(bit_generator(11))
        runs.append((sample(mdp, policy, 500, rng, compiled=compiled, monkeypatch=monkeypatch), rng.random(3)))
    assert_same_batches(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])


def slow_to_end():
    """gamma = 1, horizon null, termination with probability 0.01 per step: most episodes outlive 50 steps."""
    return (TabularMDP(initial=[1, 0], transitions=[[[0.99, 0.01]], [[0, 1]]], rewards=[[1.0], [0.0]], terminal=[1],
                       gamma=1.0), TabularSoftmax(np.zeros((2, 1))))


def test_the_same_errors_on_both_paths(monkeypatch):
    mdp, policy = slow_to_end()
    messages = []
    for compiled in (True, False):
        with pytest.raises(UsageError, match="did not terminate within max_steps = 50") as err:
            sample(mdp, policy, 10, np.random.default_rng(0), compiled=compiled, monkeypatch=monkeypatch, max_steps=50)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    grid, grid_policy = PROBLEMS["gridworld"]()
    for compiled in (True, False):
        with limits_scope(Limits(max_work=1000)), pytest.raises(UsageError, match="more than the work limit") as err:
            sample(grid, grid_policy, 10_000, np.random.default_rng(0), compiled=compiled, monkeypatch=monkeypatch)
        messages.append(str(err.value).split(" (")[0])    # the CPU seconds spent differ
    assert messages[2] == messages[3]


def test_a_run_switching_to_the_kernel_midway_gives_the_same_episodes(monkeypatch):
    """By default the first chunk takes the numpy path and later ones the kernel once the run expects
    ``KERNEL_MIN_STEPS`` more steps: the switch must not show in the episodes."""
    mdp, policy = PROBLEMS["random horizon null"]()
    slow = sample(mdp, policy, 900, np.random.default_rng(5), compiled=False, monkeypatch=monkeypatch, chunk=300)
    monkeypatch.delenv("PGVERIFY_NO_NUMBA")
    monkeypatch.delenv("PGVERIFY_NUMBA", raising=False)
    monkeypatch.setattr(sampler_module, "_KERNEL", None)            # not loaded yet in this "process"
    monkeypatch.setattr(sampler_module, "KERNEL_MIN_STEPS", 1)
    compiled_chunks = []
    real = sampler_module._sample_chunk_compiled
    monkeypatch.setattr(sampler_module, "_sample_chunk_compiled",
                        lambda *args: compiled_chunks.append(args[4]) or real(*args))
    mixed = list(iter_episode_chunks(mdp, policy, 900, np.random.default_rng(5), chunk=300))
    assert compiled_chunks == [300, 300]
    assert_same_batches(mixed, slow)


def test_a_chunk_whose_log_cannot_be_allocated_takes_the_numpy_path(monkeypatch):
    from verify.numerics import sampler_kernel

    def refuse(*args):
        raise MemoryError
    mdp, policy = PROBLEMS["gridworld"]()
    slow = sample(mdp, policy, 400, np.random.default_rng(8), compiled=False, monkeypatch=monkeypatch)
    monkeypatch.setattr(sampler_kernel, "_scratch", refuse)
    fast = sample(mdp, policy, 400, np.random.default_rng(8), compiled=True, monkeypatch=monkeypatch)
    assert_same_batches(fast, slow)


# --- never at start-up; never without being asked --------------------------------------------------------------------

PROBE = """
import json, os, sys
import numpy as np
import verify.sampler as s
from verify.builtin import builtin_examples
before = "numba" in sys.modules
ex = builtin_examples()["chain"]
s.sample_episodes(ex.mdp, ex.policy, 10, np.random.default_rng(0))
print(json.dumps([before, "numba" in sys.modules]))
"""


@pytest.mark.parametrize("flags, loaded", [({}, False), ({"PGVERIFY_NUMBA": "1"}, True),
                                           ({"PGVERIFY_NUMBA": "1", "PGVERIFY_NO_NUMBA": "1"}, False)])
def test_numba_is_imported_only_for_runs_that_pay_for_it_or_when_asked(flags, loaded):
    """Not at import; not for ten episodes (far below ``KERNEL_MIN_STEPS``) unless PGVERIFY_NUMBA asks; never
    under PGVERIFY_NO_NUMBA."""
    env = {k: v for k, v in os.environ.items() if k not in ("PGVERIFY_NO_NUMBA", "PGVERIFY_NUMBA")}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env | flags, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (before, after) == (False, loaded)


def test_the_kernel_compiles_without_a_disk_cache_where_nothing_is_writable(monkeypatch):
    """numba refuses ``cache=True`` when none of its cache locations is writable (an installed package, a read-only
    home): the kernel then compiles without a disk cache instead of failing."""
    from numba.core import caching

    from verify.numerics import sampler_kernel

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl     # _CacheImpl in older numba
    monkeypatch.setattr(impl, "_locator_classes", [])
    with pytest.raises(RuntimeError, match="no locator"):
        numba.njit(cache=True)(lambda x: x + 1)
    add_one = sampler_kernel._jit(lambda x: x + 1)
    assert add_one(41) == 42
