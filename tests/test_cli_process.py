"""How ``verify.cli.main`` runs a command (``verify.cli._process``): the collector's thresholds and a deferred
import during the command, the caller's own state afterwards."""
import gc
import subprocess
import sys

import pytest

import verify.cli as cli
from verify.cli import _process


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


def test_numpy_f2py_is_deferred_but_works_on_first_use():
    """In a fresh interpreter: SciPy's namespace clone does not execute numpy.f2py, and the module still works."""
    code = ("import sys\n"
            "from verify.cli._process import command_process\n"
            "with command_process():\n"
            "    import scipy.sparse\n"
            "print('crackfortran' in ' '.join(sys.modules))\n"
            "import numpy.f2py\n"
            "print(callable(numpy.f2py.run_main), 'numpy.f2py.crackfortran' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "True", "True"]
