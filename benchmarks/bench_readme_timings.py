"""The timings the README quotes, measured: ``pgverify report``, ``report --quick`` and, with --suite, ``pytest``.

    python benchmarks/bench_readme_timings.py [--runs N] [--docs] [--long] [--suite] [--not-slow]

Each command runs in a fresh process, ``--runs`` times (default 3; the suite once). Printed per command: the CPU
seconds of the process and its children (user + system, from ``getrusage(RUSAGE_CHILDREN)``: what the command
costs, whatever else the machine does), the wall-clock seconds (what a user waits: it grows with the load), both
as median and best, and the machine: CPU count, model, and the load average (``os.getloadavg``) before and after,
so that a quoted figure says on what machine and under what load it was measured. The baseline measured in the
same run is the interpreter start-up plus the CLI's imports (``pgverify --help``).

``--docs`` adds the other commands whose time docs/*.md quotes (``check --gym Taxi-v4`` in docs/performance.md,
``fuzz rtg-variance`` in docs/testing.md; extra ``gym``), ``--long`` the 3.6-million-episode Taxi run of
docs/verdicts.md (once; ~1.5 CPU-minutes). benchmarks/README.md maps every documented figure to its script.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(argv: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """(CPU seconds of the child and its children, wall seconds, exit status) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, proc.returncode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="runs per report command (default 3)")
    p.add_argument("--docs", action="store_true", help="also the commands docs/*.md quotes a time for")
    p.add_argument("--long", action="store_true", help="also docs/verdicts.md's 3.6-million-episode Taxi run, once")
    p.add_argument("--suite", action="store_true", help="also time the whole test suite (pytest) once")
    p.add_argument("--not-slow", action="store_true", help="also time pytest -m 'not slow' once")
    args = p.parse_args()

    pgverify = [sys.executable, "-m", "verify"]
    commands = [("pgverify --help (baseline)", [*pgverify, "--help"], args.runs),
                ("pgverify report --quick", [*pgverify, "report", "--quick", "--no-color"], args.runs),
                ("pgverify report", [*pgverify, "report", "--no-color"], args.runs)]
    if args.docs:
        commands += [("pgverify check --gym Taxi-v4", [*pgverify, "check", "--gym", "Taxi-v4", "--no-color"], args.runs),
                     ("pgverify fuzz rtg-variance", [*pgverify, "fuzz", "rtg-variance", "-o", "-"], args.runs)]
    if args.long:
        commands.append(("pgverify mc Taxi 3.6M episodes", [*pgverify, "mc", "--gym", "Taxi-v4", "--estimator",
                                                             "reward_to_go", "--episodes", "3600000"], 1))
    suite_env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    if args.not_slow:
        commands.append(("pytest -m 'not slow'", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                                  "-m", "not slow"], 1))
    if args.suite:
        commands.append(("pytest (the whole suite)", [sys.executable, "-m", "pytest", "-q", "-p",
                                                      "no:cacheprovider"], 1))

    load_before = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"load average before (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in load_before)}")
    print(f"{'command':30s} {'runs':>4s} {'CPU s med':>9s} {'CPU best':>8s} {'wall med':>8s} {'wall best':>9s} "
          f"{'CPU x base':>10s}")
    base = None
    for label, argv, runs in commands:
        results = [measure(argv, suite_env if argv[2] == "pytest" else None) for _ in range(runs)]
        failed = [status for *_, status in results if status != 0]
        cpu = [c for c, _, _ in results]
        wall = [w for _, w, _ in results]
        med = statistics.median(cpu)
        base = base or med
        note = f"  (exit {failed[0]})" if failed else ""
        print(f"{label:30s} {runs:4d} {med:9.1f} {min(cpu):8.1f} {statistics.median(wall):8.1f} {min(wall):9.1f} "
              f"{med / base:10.1f}{note}", flush=True)
    print(f"load average after (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
