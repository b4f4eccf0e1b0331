"""How the bounded ``pgverify`` commands reuse memory (``verify/_startup.reuse_memory``), and that the commands on
a user's problem and a program importing the library keep the allocator's and numpy's defaults.

Observed, not assumed: a probe script named ``pgverify`` (what the console script's ``argv[0]`` is) frees a 24 MB
block and reads the process's resident memory. Under glibc's defaults a block that size is mapped and unmapped
(resident memory falls by it: glibc's adaptive threshold only grows to the largest mapped block freed before, and
nothing that large is freed by the imports); in a bounded command it comes from the heap (up to 32 MiB) and stays
resident for reuse. The probe also reads whether numpy asks for transparent huge pages.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from verify._startup import BOUNDED_COMMANDS, SMALL_PAIRS

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import contextlib, ctypes, io, json, os, sys
import verify                                  # _startup runs first, as in the console script
import numpy
if os.environ.get("PROBE_RUN"):                # the command itself, its output dropped
    with contextlib.redirect_stdout(io.StringIO()):
        from verify.cli import main
        assert main() == 0
if os.environ.get("PROBE_PAIRS"):              # the decision a command makes once its problem is loaded
    from verify._startup import fit_memory_to
    fit_memory_to(int(os.environ["PROBE_PAIRS"]))

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
n = 24 * 2**20
block = libc.malloc(n)
ctypes.memset(block, 1, n)                     # touched: resident
before = rss()
libc.free(block)
print(json.dumps({"freed_mb": (before - rss()) / 2**20,
                  "hugepage": bool((getattr(numpy, "_core", None) or numpy.core).multiarray._get_madvise_hugepage()),
                  "env": os.environ.get("NUMPY_MADVISE_HUGEPAGE")}))
"""

glibc_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"),
    reason="glibc on Linux only (elsewhere the C library keeps its own policy)")


def probe(tmp_path: Path, name: str, *args: str, **env: str) -> dict:
    script = tmp_path / name
    script.write_text(PROBE)
    clean = {k: v for k, v in os.environ.items()
             if k not in ("NUMPY_MADVISE_HUGEPAGE", "GLIBC_TUNABLES", "PROBE_RUN", "PROBE_PAIRS")
             and not k.startswith("MALLOC_")}
    clean["PYTHONPATH"] = os.pathsep.join([str(ROOT), clean.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120,
                          env={**clean, **env}, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@glibc_linux
@pytest.mark.parametrize("command", sorted(BOUNDED_COMMANDS))
def test_a_bounded_command_keeps_freed_memory_and_uses_no_huge_pages(tmp_path, command):
    got = probe(tmp_path, "pgverify", command, "--quick")
    assert got["freed_mb"] < 1, f"24 MB block handed back to the kernel in a bounded command: {got}"
    assert got["hugepage"] is False and got["env"] == "0", got


@glibc_linux
@pytest.mark.parametrize("argv", [["mc", "examples/bandit.json"], ["gradient", "big.json"], ["--version"], []])
def test_a_command_on_the_users_problem_starts_with_the_defaults(tmp_path, argv):
    got = probe(tmp_path, "pgverify", *argv)
    assert got["freed_mb"] > 20, f"24 MB block kept: the allocator was tuned for {argv}: {got}"
    assert got["env"] is None, got


@glibc_linux
def test_a_command_on_a_small_problem_reuses_memory_once_it_is_loaded(tmp_path):
    # bandit.json: a few state-action pairs; numpy was imported (with huge pages) before the problem was known
    got = probe(tmp_path, "pgverify", "gradient", "examples/bandit.json", PROBE_RUN="1")
    assert got["freed_mb"] < 1, f"24 MB block handed back to the kernel after a small problem: {got}"
    assert got["hugepage"] is False and got["env"] is None, got


@glibc_linux
@pytest.mark.parametrize("pairs, tuned", [(SMALL_PAIRS, True), (SMALL_PAIRS + 1, False)])
def test_the_problems_size_decides(tmp_path, pairs, tuned):
    got = probe(tmp_path, "pgverify", "mc", "problem.json", PROBE_PAIRS=str(pairs))
    assert (got["freed_mb"] < 1, got["hugepage"] is False) == (tuned, tuned), (pairs, got)


@glibc_linux
def test_the_size_decides_nothing_in_a_program_importing_the_library(tmp_path):
    got = probe(tmp_path, "user_program.py", PROBE_PAIRS="10")
    assert got["freed_mb"] > 20 and got["env"] is None, got


def test_the_bounded_commands_are_commands():
    from verify.cli import build_parser

    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert BOUNDED_COMMANDS <= names, BOUNDED_COMMANDS - names


@glibc_linux
def test_a_program_importing_the_library_keeps_the_defaults(tmp_path):
    got = probe(tmp_path, "user_program.py")
    assert got["freed_mb"] > 20, f"24 MB block kept: the library changed its importer's allocator: {got}"
    assert got["env"] is None, got


@glibc_linux
@pytest.mark.parametrize("env", [{"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"},
                                 {"MALLOC_TRIM_THRESHOLD_": "131072"}])
@pytest.mark.parametrize("argv, decision", [(["report"], {}), (["mc", "problem.json"], {"PROBE_PAIRS": "10"})],
                         ids=["at start-up", "once the problem is loaded"])
def test_the_users_allocator_settings_win(tmp_path, env, argv, decision):
    got = probe(tmp_path, "pgverify", *argv, NUMPY_MADVISE_HUGEPAGE="1", **env, **decision)
    assert got["freed_mb"] > 20, f"the user's malloc settings were overridden: {got}"
    assert got["hugepage"] is True and got["env"] == "1", got


@pytest.mark.parametrize("argv, orig_argv, expected", [
    (["/usr/local/bin/pgverify", "report", "--quick"], ["python", "/usr/local/bin/pgverify", "report", "--quick"],
     ["report", "--quick"]),
    (["-m"], ["python", "-m", "verify", "report"], ["report"]),    # python -m verify, while the package loads
    (["-m"], ["python", "-X", "importtime", "-m", "verify"], []),
    (["-m"], ["python", "-m", "verify.__main__", "mc", "-h"], ["mc", "-h"]),
    (["-m"], ["python", "-m", "pytest", "tests"], None),            # another module whose package imports verify
    (["-m"], ["python", "-m", "verifyx", "report"], None),
    (["user_program.py", "report"], ["python", "user_program.py", "report"], None),
    (["-c"], ["python", "-c", "import verify"], None),
])
def test_which_process_is_the_command(monkeypatch, argv, orig_argv, expected):
    from verify import _startup

    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "orig_argv", orig_argv)
    assert _startup._command_argv() == expected
