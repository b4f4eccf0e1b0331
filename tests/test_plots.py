"""Figures: the running band is the textbook one, the CLI writes real PNGs and never overwrites silently."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from verify.app.plots import running_mean_band  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def test_running_band_matches_direct_formula():
    g = np.random.default_rng(0).normal(size=50)
    m, h = running_mean_band(g)
    for n in (2, 10, 50):
        assert m[n - 1] == pytest.approx(g[:n].mean(), abs=1e-12)
        assert h[n - 1] == pytest.approx(1.96 * g[:n].std(ddof=1) / np.sqrt(n), abs=1e-12)


def _plot(*args):
    return subprocess.run([sys.executable, "-m", "verify", "plot", *args], capture_output=True, text=True, cwd=ROOT)


def test_plot_writes_pngs_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "figs"
    proc = _plot(str(ROOT / "examples" / "chain.json"), "--out", str(out), "--episodes", "500")
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["convergence-chain.png", "variance-chain.png"]
    assert all((out / f).read_bytes().startswith(PNG) for f in files)
    before = (out / files[0]).stat().st_mtime_ns
    proc = _plot(str(ROOT / "examples" / "chain.json"), "--out", str(out), "--episodes", "500")
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert (out / files[0]).stat().st_mtime_ns == before


def test_plot_rejects_a_file_as_directory(tmp_path):
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    proc = _plot(str(ROOT / "examples" / "bandit.json"), "--out", str(f))
    assert proc.returncode == 2 and "not a directory" in proc.stderr


def test_trace_matches_direct_running_statistics_across_chunks():
    """The recorder, fed in uneven chunks, gives the running mean and variances numpy computes on the whole array."""
    from verify.checks.trace import TraceRecorder

    x = np.random.default_rng(1).normal(size=(1000, 2, 3)) * [1.0, 5.0, 0.1]
    rec = TraceRecorder(1000, shape=(2, 3), components=[4, 0], points=50)
    for lo, hi in ((0, 1), (1, 7), (7, 400), (400, 1000)):
        rec.add(x[lo:hi])
    t = rec.result()
    flat = x.reshape(1000, -1)
    for i, n in enumerate(t.n):
        np.testing.assert_allclose(t.mean[i].ravel(), flat[:n].mean(axis=0), rtol=1e-12, atol=1e-12)
        if n > 1:
            np.testing.assert_allclose(t.var[i], flat[:n, [4, 0]].var(axis=0, ddof=1), rtol=1e-9)
            assert t.var_trace[i] == pytest.approx(flat[:n].var(axis=0, ddof=1).sum(), rel=1e-9)
    assert t.n[0] == 1 and t.n[-1] == 1000


def test_figures_draw_the_runs_the_tests_judged():
    """The trace ends at the very mean the consistency test used: one sample, not a second one."""
    from verify.model.builtin import load_example
    from verify.checks.mc import run_estimators
    from verify.app.plots import TRACE_POINTS, convergence_figure

    runs = run_estimators(load_example("chain"), ["reward_to_go", "rtg_skip_current"], episodes=3000, seed=4,
                          trace=TRACE_POINTS)
    for r in runs:
        assert r.trace.n[-1] == 3000
        np.testing.assert_allclose(r.trace.mean[-1], r.test.mean, rtol=1e-12, atol=1e-15)   # summation order only
    fig = convergence_figure(runs, problem=load_example("chain"))
    assert "chain" in fig._suptitle.get_text() and "θ = [[0, 0.5]" in fig._suptitle.get_text()
    labels = [ax.get_title() for ax in fig.axes]
    assert labels[:2] == ["unbiased estimators", "pitfalls (biased on some MDPs)"]
    assert all(ax.get_xlabel() or ax.get_ylabel() for ax in fig.axes)
    # Bands built from sample variances start at BAND_MIN_EPISODES (a variance of 1-3 episodes sent the dotted
    # reference to the bottom of the log axis); the running means themselves start at n = 1.
    from matplotlib.collections import PolyCollection

    from verify.app.plots import BAND_MIN_EPISODES

    dotted = [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == ":"]
    solid = [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert dotted and min(line.get_xdata().min() for line in dotted) >= BAND_MIN_EPISODES
    assert min(line.get_xdata().min() for line in solid) == 1
    bands = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    assert bands and min(c.get_paths()[0].vertices[:, 0].min() for c in bands) >= BAND_MIN_EPISODES


def test_gym_figure_names_are_sanitised(tmp_path):
    pytest.importorskip("gymnasium")
    proc = _plot("--gym", "FrozenLake-v1", "--gym-kwargs", "map_name=4x4", "--out", str(tmp_path), "--episodes",
                 "300")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["convergence-FrozenLake-v1_map_name_4x4.png",
                                                          "variance-FrozenLake-v1_map_name_4x4.png"]
