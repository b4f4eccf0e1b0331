"""End-to-end time of ``pgverify report`` and ``--quick`` (run by hand: python benchmarks/bench_report.py).

Targets (issue 5): full report < 20 s, --quick < 5 s on the 2-core development machine. The baseline measured in
the same run is the interpreter start-up plus the imports every report pays (``pgverify --help``), so the ratios
show how much of the time is the verification itself.
"""
import statistics
import subprocess
import sys
import time

RUNS = 3


def _time(args: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "verify", *args], check=False, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    base = _time(["--help"])
    quick = _time(["report", "--quick", "--no-color"])
    full = _time(["report", "--no-color"])
    print(f"{'command':34s} {'median s':>9s} {'x baseline':>11s} {'target':>8s}")
    print(f"{'pgverify --help (baseline)':34s} {base:9.2f} {1.0:11.1f}")
    print(f"{'pgverify report --quick':34s} {quick:9.2f} {quick / base:11.1f} {'< 5 s':>8s}")
    print(f"{'pgverify report':34s} {full:9.2f} {full / base:11.1f} {'< 20 s':>8s}")


if __name__ == "__main__":
    main()
