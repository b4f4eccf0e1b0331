"""CPU seconds of ``pgverify report --quick`` (target: <= 5 CPU-s on an idle machine) and of its derivation part.

Run from the repository root: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_report_quick.py``. Each figure is
user + system CPU time of a fresh process (``resource.getrusage(RUSAGE_CHILDREN)``), so imports count, the median
of three runs. The baseline, measured in the same run, is the quick numeric half on the bandit alone (what it was
before the 2-state, H = 3, gamma < 1 model was added): the ratio is what seeing time and discount costs.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys

RUNS = 3


def cpu(args: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return sorted(times)[RUNS // 2]


NUMERIC = ("from verify.app.derivation_numeric import numeric_lines, quick_examples; from verify.app.report import "
           "derivation_rows, chain_rows, QUICK_SIZES; derivation_rows(QUICK_SIZES); chain_rows(QUICK_SIZES); "
           "ex = quick_examples(); numeric_lines({k: ex[k] for k in %r})")


def main() -> None:
    base = cpu([sys.executable, "-c", NUMERIC % (("bandit",),)])
    new = cpu([sys.executable, "-c", NUMERIC % (("bandit", "two_state"),)])
    report = cpu([sys.executable, "-m", "verify", "report", "--quick"])
    print(f"derivation checks, numeric half on the bandit only (baseline): {base:.2f} CPU-s")
    print(f"derivation checks, numeric half on bandit + two_state:        {new:.2f} CPU-s ({new / base:.2f}x)")
    print(f"pgverify report --quick (whole command):                       {report:.2f} CPU-s "
          f"({'within' if report <= 5 else 'OVER'} the 5 CPU-s budget)")


if __name__ == "__main__":
    main()
