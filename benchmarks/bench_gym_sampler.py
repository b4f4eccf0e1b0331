"""pgverify's sampler + estimator against a well-written gymnasium ``env.step`` loop + the same estimator.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_gym_sampler.py [--episodes N] [--repeats R]

Run by hand; never part of pytest. Both pipelines sample FrozenLake-v1 4x4 (slippery, H = 100) and Taxi-v4
(H = 200) under the uniform policy and evaluate the same estimator on the result.

- **gymnasium loop** (the baseline): ``gymnasium.make`` (with its TimeLimit and checker wrappers, as a user has
  it), ``env.step`` per step, actions by ``bisect`` on per-state cumulative lists with uniforms drawn from numpy in
  blocks, everything logged in flat Python lists and turned into one ``Episodes`` batch at the end. (The former
  baseline, ``verify.frameworks.gym_sampler.sample_episodes_gymnasium``, draws with ``np.searchsorted`` per step and pads per-episode
  lists: 1.6x slower; it stays the independent check of the import, not a yardstick.)
- **pgverify**: ``verify.sampler.iter_episode_chunks`` + the estimator per chunk.

Rates are episodes per CPU second of this process (``time.process_time``), best of ``--repeats``, measured
alternately in one run; the ratio is pgverify's rate over the loop's.
"""
from __future__ import annotations

import argparse
import bisect
import os
import time

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from verify.episodes import Episodes  # noqa: E402
from verify.estimators import get_estimator  # noqa: E402
from verify.gym import gym_problem, make_env  # noqa: E402
from verify.sampler import iter_episode_chunks  # noqa: E402


def gymnasium_loop(env, mdp, policy, n: int, rng: np.random.Generator) -> Episodes:
    """n episodes from env.step, logged flat; the Episodes batch is built once from the flat arrays."""
    cum = np.cumsum(policy.probs, axis=1)
    cum[:, -1] = 1.0
    cum = cum.tolist()
    H = mdp.horizon
    states, actions, rewards, lengths, finals = [], [], [], [], []
    block, i = rng.random(1 << 16).tolist(), 0
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    for e in range(n):
        if e:
            obs, _ = env.reset()
        t, done = 0, False
        while not done and t < H:
            if i == len(block):
                block, i = rng.random(1 << 16).tolist(), 0
            a = bisect.bisect_right(cum[obs], block[i])
            i += 1
            states.append(obs)
            actions.append(a)
            obs, reward, done, _, _ = env.step(a)
            rewards.append(reward)
            t += 1
        lengths.append(t)
        finals.append(obs)
    lengths = np.array(lengths)
    T = int(lengths.max(initial=0))
    mask = np.arange(T)[None, :] < lengths[:, None]
    s_t = np.repeat(np.array(finals)[:, None], T + 1, axis=1)
    a_t, r_t = np.zeros((n, T), dtype=np.intp), np.zeros((n, T))
    s_t[:, :T][mask], a_t[mask], r_t[mask] = states, actions, rewards
    return Episodes(s_t, a_t, r_t, lengths, mdp, policy)


def _best_rate(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn(n)
        best = min(best, time.process_time() - t0)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=100_000, help="episodes for pgverify (the loop gets 1/50)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"episodes per CPU second, best of {args.repeats}; BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}")
    print(f"{'problem':28s} {'estimator':14s} {'pgverify':>11s} {'gym loop':>10s} {'ratio':>7s}  sanity (mean R)")
    for env_id in ("FrozenLake-v1", "Taxi-v4"):
        problem = gym_problem(env_id)
        mdp, policy = problem.mdp, problem.policy
        env = make_env(env_id)
        n_loop = max(args.episodes // 50, 500) if env_id != "Taxi-v4" else max(args.episodes // 200, 200)
        n_ours = args.episodes if env_id != "Taxi-v4" else max(args.episodes // 5, 2_000)
        check = gymnasium_loop(env, mdp, policy, 2_000, np.random.default_rng(7))
        ours_R = np.concatenate([b.r_t.sum(axis=1) for b in iter_episode_chunks(mdp, policy, 20_000,
                                                                                 np.random.default_rng(8))])
        loop_R = check.r_t.sum(axis=1)
        z = (ours_R.mean() - loop_R.mean()) / np.sqrt(ours_R.var() / ours_R.size + loop_R.var() / loop_R.size)
        for name in ("total_return", "reward_to_go"):
            est = get_estimator(name)

            def ours(n, est=est):
                for batch in iter_episode_chunks(mdp, policy, n, np.random.default_rng(0)):
                    est.per_episode(batch)

            def loop(n, est=est):
                est.per_episode(gymnasium_loop(env, mdp, policy, n, np.random.default_rng(0)))

            fast = slow = 0.0
            for _ in range(args.repeats):          # alternate, so load affects both alike
                fast = max(fast, _best_rate(ours, n_ours, 1))
                slow = max(slow, _best_rate(loop, n_loop, 1))
            print(f"{mdp.name:28s} {name:14s} {fast:11,.0f} {slow:10,.0f} {fast / slow:6.0f}x  "
                  f"{ours_R.mean():.3f} vs {loop_R.mean():.3f} (z = {z:+.2f})")
        env.close()


if __name__ == "__main__":
    main()
