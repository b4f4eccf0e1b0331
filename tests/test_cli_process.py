"""How ``verify.cli.main`` runs a command (``verify.cli._process``): the collector's thresholds and a deferred
import during the command, the caller's own state afterwards."""
import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

import verify.cli as cli
from verify.cli import _process

ROOT = Path(__file__).resolve().parents[1]


def test_a_command_runs_under_gc_thresholds_and_restores_the_callers(monkeypatch, capsys):
    seen = []
    original = cli._main
    monkeypatch.setattr(cli, "_main", lambda argv: seen.append(gc.get_threshold()) or original(argv))
    before = gc.get_threshold()
    mine = (123, 4, 5)
    gc.set_threshold(*mine)
    try:
        assert cli.main(["--version"]) == 0
        assert seen == [_process.GC_THRESHOLDS]
        assert gc.get_threshold() == mine          # the caller's own thresholds are back
    finally:
        gc.set_threshold(*before)
    assert "pgverify" in capsys.readouterr().out


def test_the_callers_state_is_restored_when_the_command_raises(monkeypatch):
    before, finders = gc.get_threshold(), list(sys.meta_path)

    def boom(argv):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "_main", boom)
    with pytest.raises(RuntimeError):
        cli.main(["--version"])
    assert gc.get_threshold() == before
    assert sys.meta_path == finders


def test_numpys_unused_submodules_are_deferred_but_work_on_first_use():
    """In a fresh interpreter: SciPy's namespace clone executes none of the deferred modules, and each still works
    when first used (its code runs then)."""
    from verify.cli._process import DEFERRED_MODULES

    # a module each deferred package's own code imports when it runs: absent until the package is first used
    inner = {"numpy.f2py": "numpy.f2py.crackfortran", "numpy.testing": "numpy.testing._private.utils",
             "numpy.ma": "numpy.ma.core", "numpy.polynomial": "numpy.polynomial.polynomial"}
    assert set(inner) == DEFERRED_MODULES
    code = ("import json, sys\n"
            "from verify.cli._process import command_process\n"
            "with command_process():\n"
            "    import scipy.sparse, scipy.linalg\n"
            f"inner = {inner!r}\n"
            "before = [m for m in inner.values() if m in sys.modules]\n"
            "import numpy as np, numpy.f2py, numpy.testing, numpy.ma, numpy.polynomial\n"
            "works = [callable(numpy.f2py.run_main), np.testing.assert_allclose(np.ones(2), [1, 1]) is None,\n"
            "         int(np.ma.masked_array([1, 2], mask=[0, 1]).sum()) == 1,\n"
            "         bool(np.polynomial.Polynomial([1, 2])(3) == 7)]\n"
            "print(json.dumps({'before': before, 'works': works,\n"
            "                  'after': [m for m in inner.values() if m in sys.modules]}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"before": [], "works": [True] * 4, "after": list(inner.values())}
