"""Figures: the running band is the textbook one, the CLI writes real PNGs and never overwrites silently."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from verify.plots import running_mean_band  # noqa: E402

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
