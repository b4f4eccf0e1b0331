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


def force_log(kind, monkeypatch):
    """The kernel's log: "strided" (rows of cap entries per episode) or "time-major" for every chunk, or "adaptive"
    (the default: strided where the episodes fill their rows, as ``guess_fill`` expects for the first chunk and
    the earlier chunks measured for the others)."""
    from verify.numerics import sampler_kernel
    if kind == "strided":
        monkeypatch.setattr(sampler_kernel, "STRIDE_MIN_FILL", 0.0)
    elif kind == "time-major":
        monkeypatch.setattr(sampler_kernel, "STRIDE_MAX_CAP", 0)


@pytest.mark.parametrize("log", ["adaptive", "strided", "time-major"])
@pytest.mark.parametrize("layout", ["alias", "keys"])
@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("seed", [0, 1, 2024])
def test_compiled_kernel_gives_the_numpy_paths_episodes_bit_for_bit(name, seed, layout, log, monkeypatch):
    if layout == "keys":
        monkeypatch.setattr(sampler_module, "ALIAS_MAX_WIDTH", 0)
    force_log(log, monkeypatch)
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


@pytest.mark.parametrize("log", ["strided", "time-major"])
@pytest.mark.parametrize("bit_generator", [np.random.MT19937, np.random.Philox, np.random.SFC64, np.random.PCG64DXSM])
def test_any_bit_generator_gives_the_same_episodes(bit_generator, log, monkeypatch):
    force_log(log, monkeypatch)
    mdp, policy = PROBLEMS["gridworld"]()
    runs = []
    for compiled in (True, False):
        rng = np.random.Generator(bit_generator(11))
        runs.append((sample(mdp, policy, 500, rng, compiled=compiled, monkeypatch=monkeypatch), rng.random(3)))
    assert_same_batches(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])


def test_the_compiled_longest_first_is_the_layouts_order():
    """The counting sort gives ``episodes.longest_first``'s (order, first): ties, zeros, all equal, the cap."""
    from verify.numerics import sampler_kernel
    from verify.numerics.episodes import longest_first
    rng = np.random.default_rng(3)
    cases = [np.zeros(5, dtype=np.intp), np.full(7, 9), np.array([1, 3, 0, 3]), np.array([4]),
             np.zeros(0, dtype=np.intp)]
    cases += [rng.integers(0, cap + 1, size=n) for cap, n in ((1, 50), (6, 300), (200, 1000))]
    for lengths in cases:
        cap = int(lengths.max(initial=0)) + int(rng.integers(0, 3))
        ours, theirs = sampler_kernel.longest_first(lengths, cap), longest_first(lengths)
        for x, y in zip(ours, theirs):
            assert x.dtype == y.dtype and np.array_equal(x, y), (lengths[:20], x[:20], y[:20])


# --- the inlined PCG64 against numpy's own ---------------------------------------------------------------------------

def pcg64_states():
    """PCG64 bit generators in many states: seeded, advanced by 1 and by huge steps, jumped, and states and
    increments set at the edges of their 128-bit range (an odd increment, as PCG64 requires)."""
    gens = [np.random.PCG64(seed) for seed in range(40)]
    gens += [np.random.PCG64(7).advance(delta) for delta in (1, 2**64 - 1, 2**64, 2**127 + 12345, 2**128 - 1)]
    gens += [np.random.PCG64(8).jumped(j) for j in (1, 3)]
    rng = np.random.default_rng(99)
    for x, inc in [(0, 1), (2**128 - 1, 2**128 - 1), (2**64 - 1, 2**64 + 1), (2**64, 2**64 - 1)] + [
            (int(rng.integers(2**62)) << 66 | int(rng.integers(2**62)), int(rng.integers(2**62)) << 64 | 1)
            for _ in range(20)]:
        g = np.random.PCG64()
        g.state = {"bit_generator": "PCG64", "state": {"state": x, "inc": inc}, "has_uint32": 0, "uinteger": 0}
        gens.append(g)
    return gens


def test_the_inlined_pcg64_draws_numpys_doubles_and_ends_in_numpys_state():
    from verify.numerics import sampler_kernel
    for i, bitgen in enumerate(pcg64_states()):
        gen = sampler_kernel._pcg64_halves(bitgen.state)
        ours = np.empty(257)
        sampler_kernel.pcg64_doubles(gen, ours)
        rng = np.random.Generator(bitgen)
        theirs = rng.random(257)
        bad = np.flatnonzero(ours != theirs)
        assert bad.size == 0, f"generator {i}: uniform {bad[0]}: {ours[bad[0]]!r} vs {theirs[bad[0]]!r}"
        assert int(gen[0]) << 64 | int(gen[1]) == bitgen.state["state"]["state"], i
        assert int(gen[2]) << 64 | int(gen[3]) == bitgen.state["state"]["inc"], i


def test_the_pcg64_path_keeps_the_buffered_32_bit_half_and_later_draws(monkeypatch):
    """numpy's PCG64 buffers the other half of a 64-bit draw after a 32-bit one (``has_uint32``, ``uinteger``);
    doubles leave it alone, and so must the kernel: the whole state, then the next 32-bit and 64-bit draws agree."""
    from verify.numerics import sampler_kernel
    used = []
    real = sampler_kernel.draw_log
    monkeypatch.setattr(sampler_kernel, "draw_log", lambda *args: used.append(args[2]) or real(*args))
    mdp, policy = PROBLEMS["gridworld"]()
    runs = []
    for compiled in (True, False):
        rng = np.random.Generator(np.random.PCG64(2**100 + 3).advance(2**70))
        rng.integers(0, 2**32, dtype=np.uint32)                  # leaves a buffered half
        assert rng.bit_generator.state["has_uint32"] == 1
        batches = sample(mdp, policy, 500, rng, compiled=compiled, monkeypatch=monkeypatch, chunk=200)
        runs.append((batches, rng.bit_generator.state, rng.integers(0, 2**32, size=3, dtype=np.uint32),
                     rng.integers(0, 2**63, size=3)))
    assert used and all(used)          # the kernel ran, on the inlined PCG64
    assert_same_batches(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert np.array_equal(runs[0][2], runs[1][2]) and np.array_equal(runs[0][3], runs[1][3])


def test_other_bit_generators_and_pcg64_subclasses_take_the_ctypes_call(monkeypatch):
    from verify.numerics import sampler_kernel

    class MyPCG64(np.random.PCG64):
        pass
    used = []
    real = sampler_kernel.draw_log
    monkeypatch.setattr(sampler_kernel, "draw_log", lambda *args: used.append(args[2]) or real(*args))
    mdp, policy = PROBLEMS["chain"]()
    for bit_generator in (MyPCG64, np.random.PCG64DXSM, np.random.SFC64):
        runs = [sample(mdp, policy, 50, np.random.Generator(bit_generator(4)), compiled=compiled,
                       monkeypatch=monkeypatch) for compiled in (True, False)]
        assert_same_batches(*runs)
    assert used and not any(used)


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


@pytest.mark.parametrize("log", ["strided", "time-major"])
def test_step_blocks_are_reused_only_once_no_batch_refers_to_them(log, monkeypatch):
    """The kernel writes a chunk's step list into a block that no earlier batch uses any longer. A caller that keeps
    a batch (or a view of one of its arrays) must find it unchanged after later chunks and runs; one that drops its
    batches lets the run write into two blocks only, which the thread's next run reuses."""
    from verify.numerics import sampler_kernel
    force_log(log, monkeypatch)
    mdp, policy = PROBLEMS["random H=6"]()
    slow = sample(mdp, policy, 1_500, np.random.default_rng(3), compiled=False, monkeypatch=monkeypatch, chunk=300)
    monkeypatch.delenv("PGVERIFY_NO_NUMBA")
    monkeypatch.setenv("PGVERIFY_NUMBA", "1")
    monkeypatch.setattr(sampler_kernel._KEPT, "step_blocks", [], raising=False)   # none from an earlier run
    blocks, kept, copies = set(), [], []
    new_block = sampler_kernel._step_block
    monkeypatch.setattr(sampler_kernel, "_step_block",
                        lambda workspace, nbytes: blocks.add(id(b := new_block(workspace, nbytes))) or b)
    for i, batch in enumerate(iter_episode_chunks(mdp, policy, 1_500, np.random.default_rng(3), chunk=300)):
        copies.append({name: getattr(batch.steps, name).copy() for name in ("n", "t", "s", "a", "r")})
        if i == 1:
            kept.append(batch.steps.s[2:])         # a view keeps its block from reuse
        del batch
    assert len(blocks) == 3                        # two in turn, and the one the view holds
    assert np.array_equal(kept[0], slow[1].steps.s[2:])
    for i, (copy, ref) in enumerate(zip(copies, slow)):
        for name, values in copy.items():
            assert np.array_equal(values, getattr(ref.steps, name)), (i, name)
    # the next run on this thread starts with the two blocks kept (small ones: ``STEP_BLOCK_KEEP``), free once
    # the view is gone
    assert len(sampler_kernel._KEPT.step_blocks) == 2
    kept.clear()
    again = list(iter_episode_chunks(mdp, policy, 600, np.random.default_rng(3), chunk=300))
    assert len(blocks) == 3
    assert_same_batches(again, slow[:2])


@pytest.mark.parametrize("alias", [True, False])
def test_guess_fill_is_the_capped_geometric_mean_length(alias):
    """One state that ends each step with probability 1/4: the mean length capped at H is sum_{t<H} (3/4)^t, summed
    here in exact rationals, against ``guess_fill``'s closed form; and the guess picks the strided log for Taxi-like
    fills and the time-major one for short episodes."""
    from fractions import Fraction
    from verify.numerics import sampler_kernel
    from verify.numerics.sampler import joint_table
    for H in (1, 7, 200):
        mdp = TabularMDP(initial=[1, 0], transitions=[[[0.75, 0.25]], [[0, 1]]], rewards=[[0], [0]],
                         terminal=[1], horizon=H)
        table = joint_table(mdp, TabularSoftmax(np.zeros((2, 1))), alias=alias)
        exact = sum(Fraction(3, 4) ** t for t in range(H)) / H
        assert sampler_kernel.guess_fill(table, H) == pytest.approx(float(exact), rel=1e-12), H
    assert sampler_kernel.guess_fill(table, 2) > sampler_kernel.STRIDE_MIN_FILL > sampler_kernel.guess_fill(table, 200)


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
