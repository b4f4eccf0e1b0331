"""Time the grounding of every derivation (run by hand: python benchmarks/bench_grounding.py).

Prints wall time per configuration and its ratio to the (2, 2, 2) symbolic
baseline measured in the same run, so numbers from loaded machines stay comparable.
"""

import sys
import time

from derive.grounding import ground_derivation
from derive.seed import DERIVATIONS

CONFIGS = [((2, 2, 2), "symbolic", 0), ((3, 2, 3), "symbolic", 0),
           ((2, 2, 3), "random", 3), ((2, 3, 3), "random", 1)]


def run(sizes, method, points):
    start = time.perf_counter()
    results = [r for d in DERIVATIONS
               for r in ground_derivation(d, sizes, method, points or 1)]
    return time.perf_counter() - start, all(r.ok for r in results), len(results)


def main(argv):
    configs = CONFIGS if len(argv) < 2 else [c for c in CONFIGS if c[1] == argv[1]]
    base = None
    print(f"{'sizes':>10} {'method':>9} {'points':>6} {'steps':>5} {'ok':>5} {'seconds':>8} {'ratio':>7}")
    for sizes, method, points in [CONFIGS[0]] + [c for c in configs if c != CONFIGS[0]]:
        secs, ok, n = run(sizes, method, points)
        base = base or secs
        print(f"{str(sizes):>10} {method:>9} {points:>6} {n:>5} {str(ok):>5} {secs:8.2f} {secs / base:7.1f}")


if __name__ == "__main__":
    main(sys.argv)
