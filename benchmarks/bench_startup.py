"""Start-up of the CLI against ``python -c "import numpy"`` (goal: within 2x).

    python benchmarks/bench_startup.py [--repeats R]

Run by hand; never part of pytest. Each command runs in a fresh interpreter, the candidates taking turns; the
figure is the child's CPU time (user + system, from ``resource.getrusage(RUSAGE_CHILDREN)``), best of
``--repeats``, so other jobs on a shared machine do not count. Then ``python -X importtime`` lists the largest
imports of the slowest command (cumulative microseconds), which is where start-up goes.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
    "pgverify --help": [sys.executable, "-m", "verify", "--help"],
    "pgverify gradient examples/bandit.json": [sys.executable, "-m", "verify", "gradient", "examples/bandit.json"],
}


def child_cpu(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of ``argv`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def import_profile(argv: list[str], top: int = 12) -> list[tuple[int, str]]:
    """The ``top`` largest top-level imports of ``argv`` by cumulative time (-X importtime)."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=ROOT, capture_output=True, text=True)
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
    args = ap.parse_args()
    best = {name: (float("inf"), float("inf")) for name in COMMANDS}
    for _ in range(args.repeats):
        for name, argv in COMMANDS.items():
            cpu, wall = child_cpu(argv)
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    base = best["python -c 'import numpy'"][0]
    print(f"fresh interpreter per run, best of {args.repeats}; python {sys.version.split()[0]}")
    print(f"{'command':42s} {'CPU s':>7s} {'wall s':>7s} {'vs import numpy':>16s}")
    for name, (cpu, wall) in best.items():
        verdict = "" if name.startswith("python") else ("  (goal <= 2x: met)" if cpu <= 2 * base
                                                         else "  (goal <= 2x: NOT met)")
        print(f"{name:42s} {cpu:7.3f} {wall:7.3f} {cpu / base:15.2f}x{verdict}")
    slowest = max((n for n in COMMANDS if not n.startswith("python")), key=lambda n: best[n][0])
    print(f"\nlargest imports of `{slowest}` (python -X importtime, cumulative ms):")
    for us, name in import_profile(COMMANDS[slowest]):
        print(f"  {us / 1000:8.1f}  {name}")


if __name__ == "__main__":
    main()
