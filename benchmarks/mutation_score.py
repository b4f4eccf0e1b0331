"""Mutation score of the exact-mean check against the estimator catalog's pitfalls.

    python benchmarks/mutation_score.py [--problems N] [--seed S]

Draws N problems from ``tests/helpers.mutation_space()`` (Hypothesis, deterministic in the seed), runs every estimator's
``unbiased:`` claim check on each, and compares with the ground truth E[g] vs finite-difference grad J. Prints,
per estimator, how often it was biased, caught and missed, and the kill rate over the pitfalls (the target is
100%: every pitfall caught somewhere, none missed anywhere; the unbiased estimators never caught).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))     # the harness is the tests' helpers
from helpers import generated_problems, mutation_score, mutation_space  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", type=int, default=300, help="how many generated problems (default 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Hypothesis draw (default 0)")
    args = p.parse_args()

    t0 = time.perf_counter()
    sample = generated_problems(args.problems, seed=args.seed, space=mutation_space())
    t1 = time.perf_counter()
    rows = mutation_score(sample)
    t2 = time.perf_counter()

    print(f"{len(sample)} generated problems (seed {args.seed}); drawing {t1 - t0:.1f} s, scoring {t2 - t1:.1f} s")
    print(f"{'estimator':<22} {'role':<9} {'biased':>7} {'caught':>7} {'missed':>7}  verdict")
    for r in rows:
        role = "control" if r.unbiased else "mutant"
        if r.unbiased:
            verdict = "ok (never caught)" if r.caught == 0 and r.biased == 0 else "FALSE ALARM"
        else:
            verdict = "killed" if r.killed and r.missed == 0 else ("MISSED SOME" if r.killed else "SURVIVED")
        print(f"{r.estimator:<22} {role:<9} {r.biased:>7} {r.caught:>7} {r.missed:>7}  {verdict}")
    mutants = [r for r in rows if not r.unbiased]
    killed = sum(r.killed and r.missed == 0 for r in mutants)
    print(f"kill rate: {killed}/{len(mutants)} = {killed / len(mutants):.0%}   "
          f"(biased cases caught: {sum(r.biased - r.missed for r in mutants)}/{sum(r.biased for r in mutants)})")


if __name__ == "__main__":
    main()
