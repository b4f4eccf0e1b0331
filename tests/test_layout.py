"""The layered tree (ARCHITECTURE.md): the flat module paths of the old layout are aliases of the moved modules."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from verify import _aliases

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("old", sorted(_aliases.MOVED))
def test_every_flat_path_is_the_moved_module_itself(old):
    new = _aliases.MOVED[old]
    module = importlib.import_module(old)
    assert module is importlib.import_module(new), (old, new)
    assert module is sys.modules[old] is sys.modules[new]
    assert module.__name__ == new and module.__spec__.name == new, (module.__name__, module.__spec__.name)
    # attribute access through the package and `from verify import X` find the same object
    package, _, leaf = old.rpartition(".")
    assert getattr(importlib.import_module(package), leaf) is module
    assert Path(module.__file__).resolve() == ROOT.joinpath(*new.split(".")).with_suffix(".py")


def test_no_file_at_a_flat_path():
    """A file left at an old path would be shadowed by the alias (the finder answers first), i.e. dead code."""
    stale = [old for old in _aliases.MOVED if ROOT.joinpath(*old.split(".")).with_suffix(".py").exists()]
    assert not stale, stale


def test_monkeypatching_a_flat_path_patches_the_module(monkeypatch):
    import verify.checks.mc as mc
    sentinel = object()
    monkeypatch.setattr("verify.mc.DEFAULT_EPISODES", sentinel)
    assert mc.DEFAULT_EPISODES is sentinel


def test_aliases_in_a_fresh_interpreter_load_only_what_is_asked():
    code = ("import sys, verify.exact as e; import verify.numerics.exact as n; assert e is n; "
            "print(sorted(m for m in ('verify.checks.mc', 'verify.app.report', 'verify.mc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr[-2000:])


def test_unknown_module_under_verify_still_fails():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("verify.no_such_module")
