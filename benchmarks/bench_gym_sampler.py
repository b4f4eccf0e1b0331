"""pgverify's vectorised sampler + estimator against gymnasium's own ``env.step`` loop (issue 7: goal >= 100x).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_gym_sampler.py [--episodes N] [--repeats R]

Run by hand; never part of pytest. Both pipelines sample FrozenLake-v1 4x4 (slippery) with H = 100 under the
uniform policy and evaluate the same estimator; the baseline is ``verify.gym.sample_episodes_gymnasium`` (states,
rewards and termination from ``env.step``; the per-step loop a user of gymnasium would write). Rates are episodes
per CPU second of this process (``time.process_time``), best of ``--repeats``, measured alternately in one run.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from verify.estimators import get_estimator
from verify.gym import gym_problem, make_env, sample_episodes_gymnasium
from verify.sampler import iter_episode_chunks

GOAL = 100.0


def _rate(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn(n)
        best = min(best, time.process_time() - t0)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=100_000, help="episodes for the vectorised sampler")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    problem = gym_problem("FrozenLake-v1", horizon=100)
    mdp, policy = problem.mdp, problem.policy
    env = make_env("FrozenLake-v1")
    print(f"FrozenLake-v1 4x4, H = 100, uniform policy; episodes/CPU-s, best of {args.repeats}")
    print(f"{'estimator':14s} {'vectorised':>12s} {'gymnasium loop':>15s} {'ratio':>8s} {'goal':>7s}")
    for name in ("total_return", "reward_to_go"):
        est = get_estimator(name)

        def ours(n, est=est):
            for batch in iter_episode_chunks(mdp, policy, n, np.random.default_rng(0)):
                est.per_episode(batch)

        def gym_loop(n, est=est):
            est.per_episode(sample_episodes_gymnasium(env, mdp, policy, n, np.random.default_rng(0)))

        fast = _rate(ours, args.episodes, args.repeats)
        slow = _rate(gym_loop, max(args.episodes // 100, 1000), args.repeats)
        print(f"{name:14s} {fast:12,.0f} {slow:15,.0f} {fast / slow:7.0f}x {'>= 100x':>7s}")
    env.close()


if __name__ == "__main__":
    main()
