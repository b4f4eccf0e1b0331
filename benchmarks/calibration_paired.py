"""Calibration of the sampled verdicts: false alarms of unbiased estimators, detection of the restarted discount.

Run by hand: ``python benchmarks/calibration_paired.py [--seeds 100] [--episodes 20000] [--problem frozenlake]``.

For each seed, one sample of ``--episodes`` episodes is drawn on each problem and every estimator below is judged on
it (``verify.mc.run_estimators``, alpha = 1e-3, nothing enumerated: both problems are sampling-only):

- ``frozenlake``: ``--gym FrozenLake-v1 --gamma 0.99`` (4x4, slippery, uniform policy, horizon 100: too many
  trajectories to enumerate);
- ``discounted``: the built-in ``discounted`` example (horizon null) with gamma = 0.99.

Unbiased: total_return, reward_to_go, baseline_constant, baseline_value, and ``rtg_restarted_form`` (gamma^t times
a restarted reward-to-go: reward-to-go written differently, equal to it up to ~1e-15 per episode; it exercises the
paired test's round-off floor). Biased: rtg_restart_discount (the restarted discount, gamma^(t'-t)), whose bias at
gamma = 0.99 is 0.01-0.02 per-episode standard deviations.

For every test (the verdict's test, i.e. the more powerful of the two for the run, and the paired and unpaired tests
on their own) it prints the rejection count, the rate with its exact 99.9% interval (``stats.calibration``) and, for
the unbiased estimators, the counts at alpha = 0.05 and 0.01 recomputed from the same p-values (with the test chosen
at alpha = 1e-3). The baseline the paired test is measured against is the unpaired test on the same samples.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from verify.builtin import load_example
from verify.estimators import get_estimator
from verify.mc import run_estimators
from verify.problem import Problem
from verify.stats import calibration

UNBIASED = ("total_return", "reward_to_go", "baseline_constant", "baseline_value", "rtg_restarted_form")
BIASED = ("rtg_restart_discount",)
ALPHA = 1e-3


def _restarted_form(episodes) -> np.ndarray:
    """gamma^t * sum_{t' >= t} gamma^(t'-t) r_t' = reward-to-go, computed another way (round-off differs)."""
    from verify.episodes import step_reward_to_go, step_score_sums

    w = step_reward_to_go(episodes, restart_discount=True) * episodes.mdp.gamma ** episodes.steps.t
    return step_score_sums(episodes, w)


def _problems(names) -> dict[str, Problem]:
    out = {}
    for name in names:
        if name == "frozenlake":
            from verify.gym import gym_problem

            out[name] = gym_problem("FrozenLake-v1", gamma=0.99)
        else:
            p = load_example("discounted")
            out[name] = Problem(p.mdp.replace(gamma=0.99), p.policy)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--problem", choices=("frozenlake", "discounted", "both"), default="both")
    args = parser.parse_args(argv)
    names = ("frozenlake", "discounted") if args.problem == "both" else (args.problem,)
    form = dataclasses.replace(get_estimator("reward_to_go"), name="rtg_restarted_form", per_episode=_restarted_form)
    estimators = [get_estimator(n) for n in UNBIASED[:-1]] + [form] + [get_estimator(n) for n in BIASED]
    print(f"{args.seeds} seeds x {args.episodes} episodes per problem, alpha = {ALPHA:g}; tests: chosen (the "
          "verdict), paired, unpaired")
    for name, problem in _problems(names).items():
        t0 = time.perf_counter()
        p = {e.name: {"chosen": [], "paired": [], "unpaired": [], "which": []} for e in estimators}
        for seed in range(args.seeds):
            for r in run_estimators(problem, estimators, episodes=args.episodes, seed=seed, alpha=ALPHA):
                rec = p[r.estimator.name]
                rec["chosen"].append(r.sampled.p_value if not r.sampled.undecided else np.nan)
                rec["paired"].append(r.paired.p_value if not r.paired.undecided else np.nan)
                rec["unpaired"].append(r.test.p_value if not r.test.undecided else np.nan)
                rec["which"].append(r.chosen)
        secs = time.perf_counter() - t0
        print(f"\n{name}: {problem.mdp.name}, gamma {problem.mdp.gamma}, horizon {problem.mdp.horizon}; "
              f"{secs:.0f} s")
        print(f"{'estimator':22s} {'test':9s} {'paired chosen':>13s} {'undecided':>9s} {'rejected':>9s} "
              f"{'rate':>7s} {'99.9% interval':>17s} {'@0.01':>6s} {'@0.05':>6s}")
        totals = {k: [0, 0] for k in ("chosen", "paired", "unpaired")}
        for e in estimators:
            rec = p[e.name]
            for test in ("chosen", "paired", "unpaired"):
                pv = np.asarray(rec[test])
                decided = pv[~np.isnan(pv)]
                rej = int(np.sum(decided <= ALPHA))
                c = calibration(rej, max(decided.size, 1), ALPHA)
                at = [int(np.sum(decided <= a)) for a in (0.01, 0.05)]
                print(f"{e.name:22s} {test:9s} {rec['which'].count('paired'):13d} {pv.size - decided.size:9d} "
                      f"{rej:9d} {rej / max(decided.size, 1):7.3f} [{c.interval[0]:.4f}, {c.interval[1]:.4f}] "
                      f"{at[0]:6d} {at[1]:6d}")
                if e.name in UNBIASED:
                    totals[test][0] += rej
                    totals[test][1] += decided.size
        for test, (rej, n) in totals.items():
            c = calibration(rej, max(n, 1), ALPHA)
            print(f"unbiased, all: {test:9s} {rej} false alarms in {n} tests: rate {rej / max(n, 1):.4f}, 99.9% "
                  f"interval [{c.interval[0]:.4f}, {c.interval[1]:.4f}] (alpha {ALPHA:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
