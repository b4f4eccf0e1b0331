"""Where ``pgverify mc --gym Taxi-v4`` spends its time, against the sampling it cannot avoid (goal: < 3x).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_mc.py [--episodes N] [--repeats R] [--env Taxi-v4]

Run by hand; never part of pytest. Stages in CPU seconds of this process (``time.process_time``), best of
``--repeats``: importing the model from gymnasium, the exact gradient (DP), counting trajectories (the
enumeration is skipped when there are more than ``verify.mc.ENUMERATION_LIMIT``), sampling the episodes alone,
sampling + the estimator + its moments (what a run must do), and ``verify.mc.run_mc`` end to end (everything,
including the paired test's reference estimator). Then the CLI command itself in a fresh process (its CPU time
from ``resource.getrusage(RUSAGE_CHILDREN)``, start-up included). Ratios are against the sampling measured in the
same run.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from verify.estimators import get_estimator  # noqa: E402
from verify.exact import _OPERATORS, count_trajectories, gradient  # noqa: E402
from verify.gym import gym_problem  # noqa: E402
from verify.mc import DEFAULT_EPISODES, ENUMERATION_LIMIT, FULL_MOMENTS_MAX_D, _rows, run_mc  # noqa: E402
from verify.sampler import iter_episode_chunks  # noqa: E402
from verify.stats import SampleMoments  # noqa: E402


def best(fn, repeats: int) -> float:
    out = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        out = min(out, time.process_time() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="Taxi-v4")
    ap.add_argument("--episodes", type=int, default=DEFAULT_EPISODES)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--estimator", default="reward_to_go")
    args = ap.parse_args()
    n, est = args.episodes, get_estimator(args.estimator)
    problem = gym_problem(args.env)
    mdp, policy = problem.mdp, problem.policy
    by_rows = policy.theta.size > FULL_MOMENTS_MAX_D

    def sample():
        for _ in iter_episode_chunks(mdp, policy, n, np.random.default_rng(0)):
            pass

    def sample_estimate():
        acc = None
        for b in iter_episode_chunks(mdp, policy, n, np.random.default_rng(0)):
            m = _rows(est, b, policy).moments(b.n) if by_rows else SampleMoments.of(est.per_episode(b))
            acc = m if acc is None else acc.merge(m)

    def dp():
        _OPERATORS.pop(mdp, None)
        gradient(mdp, policy)

    rows = [
        ("import the model (gym_problem)", best(lambda: gym_problem(args.env), args.repeats)),
        ("exact gradient (DP, operator built)", best(dp, args.repeats)),
        (f"count trajectories (limit {ENUMERATION_LIMIT})",
         best(lambda: count_trajectories(mdp, limit=ENUMERATION_LIMIT), args.repeats)),
        (f"sample {n} episodes", best(sample, args.repeats)),
        (f"sample + {est.name} + moments", best(sample_estimate, args.repeats)),
        (f"run_mc({est.name}) end to end", best(lambda: run_mc(problem, est, episodes=n, seed=0), args.repeats)),
    ]
    base = rows[3][1]
    steps = sum(int(b.lengths.sum()) for b in iter_episode_chunks(mdp, policy, n, np.random.default_rng(0)))
    print(f"{args.env}: S = {mdp.n_states}, A = {mdp.n_actions}, H = {mdp.horizon}, {n} episodes ({steps} steps), "
          f"{count_trajectories(mdp, limit=ENUMERATION_LIMIT):.3g}+ trajectories; CPU s, best of {args.repeats}")
    print(f"{'stage':44s} {'CPU s':>8s} {'vs sampling':>12s}")
    for label, seconds in rows:
        print(f"{label:44s} {seconds:8.3f} {seconds / base:11.2f}x")
    argv = [sys.executable, "-m", "verify", "mc", "--gym", args.env, "--estimator", est.name, "--episodes", str(n)]
    cli = float("inf")
    for _ in range(args.repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli = min(cli, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    print(f"{'pgverify mc --gym ' + args.env + ' (fresh process)':44s} {cli:8.3f} {cli / base:11.2f}x")
    total = rows[-1][1]
    print(f"goal: run_mc within 3x of sampling: {total / base:.2f}x ({'met' if total / base < 3 else 'NOT met'}); "
          f"the CLI, start-up and gymnasium import included: {cli / base:.2f}x")


if __name__ == "__main__":
    main()
