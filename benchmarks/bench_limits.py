"""Do the budgets bound? Peak RSS of real ``pgverify`` runs against ``--max-memory``, and the time of runs that once
hung. Two valid files that used to escape their limits are generated here:

- ``wide.json``: one state-action with 20 000 successors (S = 20 001, H = 3); ``check`` allocated a 20 000 x 20 001
  array of exact moments and expanded 4 10^7 successor entries (12.6 GB before it was stopped);
- ``long.json``: two states, no terminal state, horizon 10^5; ``mc`` with 1 000 episodes took 2.7 GB under the
  default 2 GiB limit (a floor of 256 episodes per chunk).

Each run is a subprocess; its peak resident set is ``ru_maxrss`` of the child (``os.wait4``). A run passes when
its peak is at most the limit (the issue asks for "within 10 %"; the process itself, ~60-100 MB, is counted).

    python benchmarks/bench_limits.py            # about 5 minutes on an idle 2-core machine
    python benchmarks/bench_limits.py --quick    # the wide file and 200 long episodes only
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20


def wide(path: Path, n: int = 20_000) -> None:
    S = n + 1
    trans = [[0, 0, s, 1.0 / n] for s in range(1, S)] + [[s, 0, s, 1.0] for s in range(1, S)]
    doc = {"states": S, "actions": 1, "initial": [1.0] + [0.0] * n, "transitions": {"sparse": trans},
           "rewards": {"sparse": [[s, 0, float(s % 7)] for s in range(S)]}, "terminal": list(range(1, S)),
           "horizon": 3}
    path.write_text(json.dumps(doc))


def long(path: Path) -> None:
    doc = {"initial": [1, 0], "transitions": [[[0.5, 0.5], [0.1, 0.9]], [[0.5, 0.5], [0.9, 0.1]]],
           "rewards": [[1, 0], [0, 1]], "horizon": 100_000}
    path.write_text(json.dumps(doc))


def run(argv: list[str]) -> tuple[int, float, float]:
    """(exit status, peak RSS in MiB, wall seconds) of ``python -m verify ARGV``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "verify", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode().strip()
    if proc.returncode == 2:
        print(f"    refused: {err}")
    return proc.returncode, usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        files = {"wide": Path(tmp) / "wide.json", "long": Path(tmp) / "long.json"}
        wide(files["wide"])
        long(files["long"])
        runs = [("wide", ["check", str(files["wide"]), "--episodes", "2000"]),
                ("long", ["mc", str(files["long"]), "--estimator", "reward_to_go",
                          "--episodes", "200" if args.quick else "1000"])]
        limits = ["2G"] if args.quick else ["300M", "1G", "2G"]
        print(f"{'file':6} {'command':6} {'--max-memory':>12} {'exit':>4} {'peak MiB':>9} {'peak/limit':>10} "
              f"{'wall s':>7}")
        for name, argv in runs:
            for limit in limits:
                code, peak, wall = run([*argv, "--max-memory", limit])
                limit_mib = {"300M": 300, "1G": 1024, "2G": 2048}[limit]
                ratio = peak / limit_mib
                worst = max(worst, ratio)
                print(f"{name:6} {argv[0]:6} {limit:>12} {code:>4} {peak:9.0f} {ratio:10.2f} {wall:7.1f}")
    print(f"largest peak/limit: {worst:.2f} ({'within' if worst <= 1.10 else 'OVER'} the 10 % the budgets promise)")
    return 0 if worst <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
