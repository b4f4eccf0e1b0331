"""How the JAX adapter compiles (``verify.frameworks._jax_compile``): its XLA options change no number and no
verdict, a first check compiles a bounded number of executables (counted by jax's own monitoring events, never
timed) and a second none, the padding probe still catches a loss that averages over padded time, and the persistent
compilation cache is pgverify's only while a check runs, off under PGVERIFY_NO_CACHE, never in place of a cache
the user configured, and read by a later process. Skips only outside CI when jax is missing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import jax
    import jax.numpy as jnp
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("JAX is not installed (pip install 'pgverify[jax]'; CI installs it)", allow_module_level=True)

from jax._src import compilation_cache

from tests.test_frameworks_padding import leaky, loss_mean_over_padded_time, loss_tabular
from verify.frameworks import _jax_compile
from verify.frameworks import jax as vjax
from verify.frameworks._jax_compile import cache_directory, count_compilations

ROOT = Path(__file__).resolve().parents[1]
# B >= 6: the convention probe uses the batch shape; numpy_first=False: compiled from the first check (the tier
# this file is about; the numpy tier has its own tests at the end)
SETTINGS = dict(batch_size=8, batches=40, seed=3, numpy_first=False)


def fresh():
    """A new policy function and a new loss (nothing compiled for them yet: ``_head`` and ``_COMPILED`` are keyed by
    the functions), and a counter of the loss's traces."""
    traces = [0]

    def apply(params, obs):
        return obs @ params["theta"]

    def loss(params, batch):
        traces[0] += 1
        return loss_tabular(params, batch)
    return apply, loss, traces


def params_of(mdp, seed=1):
    return {"theta": np.random.default_rng(seed).normal(size=(mdp.n_states, mdp.n_actions)) * 0.3}


def assert_same_check(a, b):
    """Two Monte Carlo checks of one loss computed two ways: the same verdict, convention and padding, the
    estimates and grad J equal to round-off."""
    assert a.method == b.method == "monte carlo"
    assert (a.verdict, a.convention, a.extra) == (b.verdict, b.convention, b.extra)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, atol=1e-14)
    assert a.p_unbiased == pytest.approx(b.p_unbiased, rel=1e-9)


@pytest.fixture
def jax_cache(tmp_path, monkeypatch):
    """pgverify's persistent cache switched on, in a directory of this test's own (a cache directory the
    environment configured for jax, JAX_COMPILATION_CACHE_DIR, is set aside for the test)."""
    monkeypatch.delenv(_jax_compile.ENV_OFF, raising=False)
    monkeypatch.setenv(_jax_compile.ENV_DIR, str(tmp_path))
    theirs = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache.reset_cache()
    try:
        yield cache_directory()
        assert compilation_cache._cache is None                # reset when the check ended
    finally:
        jax.config.update("jax_compilation_cache_dir", theirs)
        compilation_cache.reset_cache()


def test_compiler_options_change_no_number(monkeypatch):
    # The same check compiled with jax's defaults (a second method): the same Monte Carlo estimates to round-off.
    mdp = leaky(horizon=30)
    apply, loss, _ = fresh()
    ours = vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    monkeypatch.setattr(vjax, "MAIN_COMPILE", None)
    monkeypatch.setattr(vjax, "PROBE_COMPILE", None)
    monkeypatch.setattr(vjax, "_JITTED", {})
    apply, loss, _ = fresh()
    defaults = vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    assert_same_check(ours, defaults)


def test_a_first_check_compiles_two_executables_and_a_second_none():
    mdp = leaky(horizon=30)
    apply, loss, traces = fresh()
    with count_compilations() as first:
        check = vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    assert check.method == "monte carlo" and check.convention == "mean"
    # the vmapped value_and_grad of the batches at the horizon, and one program (vjax._Prelude) for the policy head
    # with its Jacobian, single episodes (the convention probe) and the padding probe's second length
    assert first == {"compiled": 2, "loaded": 0}, first          # PGVERIFY_NO_CACHE (conftest): nothing loaded
    assert traces[0] == 4           # the batches, the prelude's value_and_grad and its forward pass, the precision
    with count_compilations() as second:
        again = vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    assert second == {"compiled": 0, "loaded": 0}
    assert traces[0] == 5           # only the precision probe's jaxpr is traced again (no compilation)
    np.testing.assert_array_equal(again.mean, check.mean)


def test_the_prelude_changes_no_estimate_and_saves_two_compilations(monkeypatch):
    # The same check without the prelude (vjax._Prelude: the head, single episodes and the padding probe's second
    # length in one program): the separate functions, four compilations, and the same Monte Carlo estimates (the
    # batches' own compiled program) and the same convention from the probe.
    mdp = leaky(horizon=30)
    apply, loss, _ = fresh()
    with count_compilations() as fused:
        ours = vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    monkeypatch.setattr(vjax, "PRELUDE_MAX_ROWS", 0)
    apply, loss, _ = fresh()
    with count_compilations() as separate:
        theirs = vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    assert (fused["compiled"], separate["compiled"]) == (2, 4)
    assert (ours.verdict, ours.convention, ours.method) == (theirs.verdict, theirs.convention, theirs.method)
    np.testing.assert_array_equal(ours.mean, theirs.mean)
    np.testing.assert_allclose(ours.grad, theirs.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("numpy_first", [False, True])
def test_a_loss_the_prelude_cannot_trace_falls_back_as_without_it(numpy_first):
    # A loss branching in Python on a traced value fails the prelude's first call; the separate functions then
    # evaluate it eagerly: the same numbers as jit=False (which never compiles it).
    from verify.model.builtin import builtin_examples

    mdp = builtin_examples()["bandit"].mdp
    apply, _, _ = fresh()

    def branchy(params, batch):
        if float(batch.rewards.sum()) > 1e9:            # Python control flow on a value: untraceable
            raise AssertionError("never")
        return loss_tabular(params, batch)
    settings = dict(batch_size=2, batches=20, seed=3)
    check = vjax.check_loss(apply, params_of(mdp), branchy, mdp, numpy_first=numpy_first, **settings)
    eager = vjax.check_loss(apply, params_of(mdp), branchy, mdp, jit=False, **settings)
    assert (check.verdict, check.convention, check.method) == (eager.verdict, eager.convention, eager.method)
    np.testing.assert_allclose(check.mean, eager.mean, rtol=1e-12, atol=1e-14)


def test_the_caller_s_garbage_collector_state_is_kept():
    # frozen_heap: the heap is frozen only while a check runs, never when the caller froze objects or disabled
    # the collector, and each check leaves both as it found them.
    import gc

    mdp = leaky(horizon=10)
    apply, loss, _ = fresh()
    seen = []
    inner = vjax._target

    def spy(*args, **kwargs):
        seen.append(gc.get_freeze_count())
        return inner(*args, **kwargs)
    try:
        vjax._target = spy
        vjax.check_loss(apply, params_of(mdp), loss, mdp, batch_size=8, batches=20, seed=3)
        assert seen[-1] > 0 and gc.get_freeze_count() == 0 and gc.isenabled()
        gc.disable()
        vjax.check_loss(apply, params_of(mdp), loss, mdp, batch_size=8, batches=20, seed=3)
        assert seen[-1] == 0 and not gc.isenabled()
        gc.enable()
        keep = [object()]
        gc.freeze()
        frozen = gc.get_freeze_count()
        vjax.check_loss(apply, params_of(mdp), loss, mdp, batch_size=8, batches=20, seed=3)
        # the caller's frozen objects stay frozen and none were added (frozen objects freed by reference
        # counting leave the count, so it may only shrink)
        assert seen[-1] <= frozen and 0 < gc.get_freeze_count() <= frozen and keep
    finally:
        vjax._target = inner
        gc.unfreeze()
        gc.enable()


def test_the_padding_probe_still_catches_a_mean_over_padded_time():
    # The same leaky MDP under Monte Carlo: the mean over B x T entries is detected and the batches are left
    # unpadded, and the estimates are those of pad_to=None (bit for bit).
    mdp = leaky(horizon=30)
    auto = vjax.check_loss(fresh()[0], params_of(mdp), loss_mean_over_padded_time, mdp, **SETTINGS)
    unpadded = vjax.check_loss(fresh()[0], params_of(mdp), loss_mean_over_padded_time, mdp, pad_to=None, **SETTINGS)
    assert auto.extra["padding"] == "each batch padded to its longest episode"
    assert auto.verdict == unpadded.verdict and auto.convention is None
    np.testing.assert_array_equal(auto.mean, unpadded.mean)


def test_the_cache_is_off_under_PGVERIFY_NO_CACHE(tmp_path, monkeypatch):
    monkeypatch.setenv(_jax_compile.ENV_OFF, "1")
    monkeypatch.setenv(_jax_compile.ENV_DIR, str(tmp_path))
    mdp = leaky(horizon=20)
    apply, loss, _ = fresh()
    vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    assert not cache_directory().exists()
    assert _jax_compile.cache_info()["enabled"] is False


def test_the_cache_is_written_during_a_check_only(jax_cache):
    mdp = leaky(horizon=20)
    apply, loss, _ = fresh()
    with count_compilations() as counted:
        vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    entries = _jax_compile.cache_info()["entries"]
    assert entries == counted["compiled"] == 2
    # the user's own compilation after the check: neither read from nor written to pgverify's cache
    jax.jit(lambda x: jnp.sin(x) * 3.0)(np.arange(5.0))
    assert _jax_compile.cache_info()["entries"] == entries
    assert jax.config.jax_compilation_cache_dir is None
    assert _jax_compile.clear_cache() == entries and _jax_compile.cache_info()["entries"] == 0


def test_a_cache_the_user_configured_is_left_alone(jax_cache, tmp_path):
    theirs = tmp_path / "theirs"
    jax.config.update("jax_compilation_cache_dir", str(theirs))
    try:
        mdp = leaky(horizon=20)
        apply, loss, _ = fresh()
        vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
        assert jax.config.jax_compilation_cache_dir == str(theirs)
        assert not jax_cache.exists()                 # pgverify wrote nothing of its own
        # jax's own rule applied: its default minimum compile time (1 s) keeps these small executables out
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 1.0
    finally:
        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()


CHILD = """
import json, sys
import numpy as np
sys.path.insert(0, {root!r})
from tests.test_frameworks_padding import leaky, loss_tabular
from verify.frameworks import jax as vjax
from verify.frameworks._jax_compile import count_compilations
mdp = leaky(horizon=20)
with count_compilations() as counted:
    check = vjax.check_loss(lambda p, o: o @ p["theta"], {{"theta": np.full((3, 2), 0.2)}}, loss_tabular, mdp,
                            batch_size=8, batches=40, seed=3, numpy_first=False)
print(json.dumps({{**counted, "verdict": check.verdict, "mean": check.mean.tolist()}}))
"""


def test_a_later_process_loads_what_the_first_compiled(tmp_path):
    env = {**os.environ, _jax_compile.ENV_DIR: str(tmp_path)}
    env.pop(_jax_compile.ENV_OFF)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)          # a cache of the environment's would be used instead
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT))], env=env, capture_output=True,
                              text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, later = runs
    assert (first["compiled"], first["loaded"]) == (2, 0)
    assert (later["compiled"], later["loaded"]) == (0, 2)
    assert later["verdict"] == first["verdict"] and later["mean"] == first["mean"]


def test_an_unknown_compiler_option_falls_back_to_jax_defaults(monkeypatch):
    monkeypatch.setattr(_jax_compile, "_OPTIONS_OK", [True])      # this test's own flag: the suite's stays as it is
    with jax.enable_x64(True):
        fn = _jax_compile.jit(lambda x: x * 2.0 + 1.0, {"xla_no_such_option_for_pgverify": True})
        np.testing.assert_array_equal(np.asarray(fn(np.arange(3.0))), [1.0, 3.0, 5.0])
    assert _jax_compile._OPTIONS_OK[0] is False


@pytest.mark.parametrize("env", [{}, {"XDG_CACHE_HOME": "/xdg"}, {"XDG_CACHE_HOME": "relative"},
                                 {"PGVERIFY_CACHE_DIR": "/mine", "XDG_CACHE_HOME": "/xdg"}])
def test_the_jax_cache_lives_beside_the_proof_cache(monkeypatch, env):
    from derive import proof_cache

    for name in ("PGVERIFY_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cache_directory() == proof_cache.cache_dir().parent / "jax"


def test_a_corrupted_entry_is_compiled_again_and_replaced(jax_cache):
    mdp = leaky(horizon=20)

    def run():
        apply, loss, _ = fresh()                   # new functions: jax's in-memory caches miss, the disk decides
        with count_compilations() as counted:
            check = vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
        return counted, check.mean
    first, mean = run()
    assert first == {"compiled": 2, "loaded": 0}
    for entry in jax_cache.glob("*-cache"):
        entry.write_bytes(b"not an executable")
    with pytest.warns(UserWarning, match="persistent compilation cache"):
        again, mean_again = run()
    assert again == {"compiled": 2, "loaded": 0}
    np.testing.assert_array_equal(mean_again, mean)
    third, mean_third = run()
    assert third == {"compiled": 0, "loaded": 2}
    np.testing.assert_array_equal(mean_third, mean)


def test_an_unusable_cache_directory_only_means_nothing_is_stored(jax_cache, tmp_path, monkeypatch, recwarn):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    monkeypatch.setenv(_jax_compile.ENV_DIR, str(blocker))      # .../a-file/jax cannot be created
    mdp = leaky(horizon=20)
    apply, loss, _ = fresh()
    with count_compilations() as counted:
        check = vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    assert check.method == "monte carlo" and counted == {"compiled": 2, "loaded": 0}
    assert not [w for w in recwarn if "cache" in str(w.message)]
    assert compilation_cache._cache is None


def test_cache_info_and_clear_cover_the_jax_cache(jax_cache, capsys):
    from verify.cli import main

    mdp = leaky(horizon=20)
    apply, loss, _ = fresh()
    vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    mine = jax_cache / "notes.txt"
    mine.write_text("a user's file")
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"JAX compilation cache: {jax_cache}\n2 executables" in out and out.rstrip().endswith("on")
    assert main(["cache", "clear"]) == 0
    assert f"removed 2 compiled JAX executables from {jax_cache}" in capsys.readouterr().out
    assert [p.name for p in jax_cache.iterdir()] == ["notes.txt"] and mine.read_text() == "a user's file"


# --- the numpy tier (numpy_first, the default): a loss's first check evaluates the traced jaxprs with numpy ---

def test_a_first_check_runs_on_numpy_and_the_second_compiles_the_same_numbers():
    # The first check compiles nothing; the second compiles the two programs from the traces the first made (no
    # retrace). The XLA-compiled programs are a second method for the numpy evaluation: the same estimates to
    # round-off (summation order), the same verdict, convention and padding decision.
    mdp = leaky(horizon=30)
    apply, loss, traces = fresh()
    settings = dict(SETTINGS, numpy_first=True)
    with count_compilations() as first:
        on_numpy = vjax.check_loss(apply, params_of(mdp), loss, mdp, **settings)
    assert first == {"compiled": 0, "loaded": 0}, first
    assert traces[0] == 4           # as compiled: the batches, the prelude's value_and_grad and forward, the precision
    with count_compilations() as second:
        compiled = vjax.check_loss(apply, params_of(mdp), loss, mdp, **settings)
    assert second == {"compiled": 2, "loaded": 0}, second
    assert traces[0] == 5           # only the precision probe's jaxpr is traced again
    assert_same_check(on_numpy, compiled)


def test_numpy_first_false_compiles_in_the_first_check():
    mdp = leaky(horizon=20)
    apply, loss, _ = fresh()
    with count_compilations() as counted:
        vjax.check_loss(apply, params_of(mdp), loss, mdp, **SETTINGS)
    assert counted["compiled"] == 2


def test_a_primitive_numpy_does_not_evaluate_is_compiled_in_the_numpy_tier():
    # jnp.sort (primitive sort) is not in the numpy evaluator: the programs containing it are compiled by XLA in the
    # first check, with the same numbers as a check compiled throughout.
    mdp = leaky(horizon=20)

    def sorted_too(params, batch):      # + 0 * a sort of the rewards: the same loss, one more primitive
        return loss_tabular(params, batch) + 0.0 * jnp.sort(batch.rewards, axis=1).sum()
    apply = fresh()[0]
    with count_compilations() as counted:
        tiered = vjax.check_loss(apply, params_of(mdp), sorted_too, mdp, **dict(SETTINGS, numpy_first=True))
    assert counted["compiled"] == 2
    compiled = vjax.check_loss(fresh()[0], params_of(mdp), lambda p, b: sorted_too(p, b), mdp, **SETTINGS)
    assert tiered.verdict == compiled.verdict
    np.testing.assert_array_equal(tiered.mean, compiled.mean)


def test_an_evaluator_failure_is_compiled_never_blamed_on_the_loss(monkeypatch):
    # A numpy program that raises (an evaluator bug: the loss itself ran when it was traced) must not surface as
    # "loss ... raised": the program is compiled by XLA instead, with the compiled check's numbers.
    from verify.frameworks import _numpy_eval

    def broken(closed):
        def run(*args):
            raise ValueError("an evaluator bug")
        return run
    monkeypatch.setattr(_numpy_eval, "numpy_program", broken)
    mdp = leaky(horizon=20)
    apply, loss, _ = fresh()
    with count_compilations() as counted:
        tiered = vjax.check_loss(apply, params_of(mdp), loss, mdp, **dict(SETTINGS, numpy_first=True))
    assert counted["compiled"] == 2
    compiled = vjax.check_loss(fresh()[0], params_of(mdp), fresh()[1], mdp, **SETTINGS)
    assert tiered.verdict == compiled.verdict
    np.testing.assert_array_equal(tiered.mean, compiled.mean)
