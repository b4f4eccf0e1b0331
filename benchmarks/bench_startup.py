"""Start-up of the CLI against ``python -c "import numpy"`` (goals: --help <= 1.5x, gradient and estimators <= 2x).

    python benchmarks/bench_startup.py [--repeats R]

Run by hand; never part of pytest. Each command runs in a fresh interpreter, the candidates taking turns; the
figure is the child's CPU time (user + system, from ``resource.getrusage(RUSAGE_CHILDREN)``), best of
``--repeats``, so other jobs on a shared machine do not count (the load average before and after is printed with
the machine). The goals (issue 28): every ``--help`` within 1.5x, ``gradient FILE`` and ``estimators`` within 2x.
``tests/test_startup.py`` checks the structural side (what each command imports), never the time. Then ``python -X importtime`` lists the largest
imports of the slowest command (cumulative microseconds), which is where start-up goes.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_readme_timings import _cpu_model     # benchmarks/ is on sys.path when a script here runs

ROOT = Path(__file__).resolve().parent.parent
PGVERIFY = [sys.executable, "-m", "verify"]
COMMANDS = {
    "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
    "python -c pass": [sys.executable, "-c", "pass"],
    "pgverify --help": [*PGVERIFY, "--help"],
    "pgverify mc --help": [*PGVERIFY, "mc", "--help"],
    "pgverify loss --help": [*PGVERIFY, "loss", "--help"],
    "pgverify gradient examples/bandit.json": [*PGVERIFY, "gradient", "examples/bandit.json"],
    "pgverify estimators": [*PGVERIFY, "estimators"],
}
GOALS = {"pgverify --help": 1.5, "pgverify mc --help": 1.5, "pgverify loss --help": 1.5,
         "pgverify gradient examples/bandit.json": 2.0, "pgverify estimators": 2.0}


def child_env(pycache: str | None) -> dict[str, str]:
    """The children's environment: with ``pycache`` a directory, bytecode is written there and read back (as after
    ``pip install``, which compiles every module; the worktree stays clean); with None, as this environment says
    (PYTHONDONTWRITEBYTECODE=1 makes every run compile every module it imports, numpy's and pgverify's alike)."""
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def child_cpu(argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of ``argv`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def import_profile(argv: list[str], env: dict[str, str] | None = None, top: int = 12) -> list[tuple[int, str]]:
    """The ``top`` largest top-level imports of ``argv`` by cumulative time (-X importtime)."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, _, cumulative, name = line.split("|", 1)[0], None, *line.split("|")[1:]
        depth = len(name) - len(name.lstrip())
        if depth <= 3:               # the modules imported directly by the program or its first level
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bytecode", choices=("cached", "environment"), default="cached",
                    help="cached: .pyc files in a temporary PYTHONPYCACHEPREFIX, written by a warm-up run (an "
                         "installed package; default); environment: as PYTHONDONTWRITEBYTECODE etc. say")
    ap.add_argument("--before", type=Path, metavar="DIR",
                    help="also run each pgverify command from another checkout (e.g. `git archive main | tar -x -C "
                         "DIR`), first on PYTHONPATH, interleaved with this tree's")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgverify-pycache-") as pycache:
        env = child_env(pycache if args.bytecode == "cached" else None)
        candidates = {name: (argv, env, ROOT) for name, argv in COMMANDS.items()}
        if args.before is not None:
            before_env = {**env, "PYTHONPATH": str(args.before.resolve())}
            candidates.update({f"{name} (before)": (argv, before_env, args.before.resolve())
                               for name, argv in COMMANDS.items() if name in GOALS})
        for argv, cenv, cwd in candidates.values():     # warm-up: writes the bytecode (and the page cache)
            child_cpu(argv, cenv, cwd)
        measure(args, env, candidates)


def measure(args, env: dict[str, str], candidates: dict) -> None:
    load_before = os.getloadavg()
    best = {name: (float("inf"), float("inf")) for name in candidates}
    for _ in range(args.repeats):
        for name, (argv, cenv, cwd) in candidates.items():
            cpu, wall = child_cpu(argv, cenv, cwd)
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    base = best["python -c 'import numpy'"][0]
    print(f"machine: {os.cpu_count()} CPUs ({_cpu_model()}), python "
          f"{sys.version.split()[0]}; load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"fresh interpreter per run, candidates interleaved, best of {args.repeats} (child CPU s); bytecode: "
          + ("cached (.pyc written by a warm-up run)" if args.bytecode == "cached" else
             f"as the environment says (PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')})"))
    print(f"{'command':51s} {'CPU s':>7s} {'wall s':>7s} {'vs import numpy':>16s}")
    for name, (cpu, wall) in best.items():
        goal = GOALS.get(name)
        verdict = "" if goal is None else f"  (goal <= {goal:g}x: {'met' if cpu <= goal * base else 'NOT met'})"
        print(f"{name:51s} {cpu:7.3f} {wall:7.3f} {cpu / base:15.2f}x{verdict}")
    slowest = max(GOALS, key=lambda n: best[n][0] / GOALS[n])
    print(f"\nlargest imports of `{slowest}` (python -X importtime, cumulative ms):")
    for us, name in import_profile(COMMANDS[slowest], env):
        print(f"  {us / 1000:8.1f}  {name}")


if __name__ == "__main__":
    main()
