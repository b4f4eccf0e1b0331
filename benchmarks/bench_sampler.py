"""Sampler + estimator throughput against the naive per-step loop, and memory for 10^6 episodes.

    python benchmarks/bench_sampler.py              # ~2 min on 2 cores
    python benchmarks/bench_sampler.py --quick      # fewer episodes
    python benchmarks/bench_sampler.py --threads 2  # BLAS threads (default 1, set before numpy is imported)

Run by hand; never part of pytest. Every ratio is measured within this run (baseline and candidate alternate,
best of ``--repeats``). Rates are per second of this process's CPU time (``time.process_time``): on a shared
machine wall time mostly measures the neighbours. BLAS gets one thread by default, like the naive loop; with
two threads on two busy cores the running moments' small matrix products slow down ~40x.
Targets from issue 3 are printed, not asserted.

1. FrozenLake 4x4 (slippery, built here from the documented rules: intended direction or either perpendicular
   one, 1/3 each; holes and the goal absorb; reward 1 on entering the goal), uniform policy, H = 100, gamma = 1.
   Baseline: ``sample_episodes_naive`` (``rng.choice`` for s_0, every a_t and every s_{t+1}) followed by the same
   estimator. Goal: >= 250x for sampler + estimator. The vectorised batches hold the step list and fill their
   padded [N, T] arrays only when read (``total_return`` reads r_t; the reward-to-go estimators read none), so
   "sampling only" does not include them.
2. A dense random MDP (S = 30, A = 4, every transition possible, one terminal state entered with probability
   ~0.5%, H = 200): long episodes.
0. Memory: 10^6 FrozenLake episodes streamed chunk by chunk through an estimator into running moments (what
   ``pgverify mc`` does), peak traced numpy/Python memory (tracemalloc) and the process's peak RSS, against the
   size one unchunked batch would need.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

if __name__ == "__main__":      # BLAS reads its thread count once, when numpy is first imported
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np  # noqa: E402

from verify.episodes import discounted_returns  # noqa: E402
from verify.estimators import get_estimator  # noqa: E402
from verify.mdp import TabularMDP  # noqa: E402
from verify.policy import TabularSoftmax  # noqa: E402
from verify.sampler import chunk_size, iter_episode_chunks, sample_episodes_naive  # noqa: E402
from verify.stats import SampleMoments  # noqa: E402

GOAL = 250.0
clock = time.process_time


def frozen_lake(horizon: int = 100) -> TabularMDP:
    desc = ["SFFF", "FHFH", "FFFH", "HFFG"]
    S, A = 16, 4
    moves = [(0, -1), (1, 0), (0, 1), (-1, 0)]        # left, down, right, up (gymnasium's order)
    P = np.zeros((S, A, S))
    R = np.zeros((S, A, S))
    for s in range(S):
        row, col = divmod(s, 4)
        for a in range(A):
            for b in ((a - 1) % 4, a, (a + 1) % 4):
                nr = min(max(row + moves[b][0], 0), 3)
                nc = min(max(col + moves[b][1], 0), 3)
                P[s, a, nr * 4 + nc] += 1 / 3
                R[s, a, nr * 4 + nc] = float(desc[nr][nc] == "G")
    terminal = np.array([desc[s // 4][s % 4] in "HG" for s in range(S)])
    return TabularMDP(initial=np.eye(S)[0], transitions=P, rewards=R, terminal=terminal, gamma=1.0,
                      horizon=horizon, name="FrozenLake4x4")


def dense_random(seed: int = 0, S: int = 30, A: int = 4, horizon: int = 200) -> TabularMDP:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    P[:, :, S - 1] = 0.005                           # the terminal state: ~200 steps on average, capped at H
    P[:, :, :S - 1] *= 0.995 / P[:, :, :S - 1].sum(axis=2, keepdims=True)
    return TabularMDP(initial=rng.dirichlet(np.ones(S)), transitions=P, rewards=rng.normal(size=(S, A)),
                      terminal=[S - 1], gamma=0.99, horizon=horizon, name=f"dense{S}x{A}")


def fast_rate(mdp, policy, n, estimator, *, moments: bool, seed: int = 1) -> tuple[float, float]:
    """Episodes per second of the vectorised path (sampling, + estimator, + running moments); mean length."""
    rng = np.random.default_rng(seed)
    acc, steps = None, 0
    t0 = clock()
    for batch in iter_episode_chunks(mdp, policy, n, rng):
        steps += int(batch.lengths.sum())
        if estimator is not None:
            g = estimator.per_episode(batch)
            if moments:
                m = SampleMoments.of(g)
                acc = m if acc is None else acc.merge(m)
    return n / (clock() - t0), steps / n


def naive_rate(mdp, policy, n, estimator, seed: int = 2) -> tuple[float, float]:
    t0 = clock()
    eps = sample_episodes_naive(mdp, policy, n, np.random.default_rng(seed))
    if estimator is not None:
        estimator.per_episode(eps)
    return n / (clock() - t0), float(eps.lengths.mean())


def compare(mdp, n_fast: int, n_naive: int, repeats: int) -> None:
    policy = TabularSoftmax(np.zeros((mdp.n_states, mdp.n_actions)))
    print(f"\n{mdp.name}: {mdp.n_states} states, {mdp.n_actions} actions, H = {mdp.horizon}; "
          f"chunk {chunk_size(mdp)} episodes; fast N = {n_fast}, naive N = {n_naive}, best of {repeats}")
    # Same distribution? Mean returns of the two samplers within 5 standard errors.
    a = discounted_returns(next(iter_episode_chunks(mdp, policy, 20_000, np.random.default_rng(9))))
    b = discounted_returns(sample_episodes_naive(mdp, policy, n_naive, np.random.default_rng(10)))
    z = (a.mean() - b.mean()) / np.sqrt(a.var() / a.size + b.var() / b.size)
    print(f"  sanity: mean return fast {a.mean():.4f}, naive {b.mean():.4f} (z = {z:+.2f})")
    print(f"  {'pipeline':44s} {'fast ep/s':>12s} {'naive ep/s':>11s} {'ratio':>8s}")
    rows = [("sampling only", None, False), ("sampling + total_return", "total_return", False),
            ("sampling + reward_to_go", "reward_to_go", False),
            ("sampling + reward_to_go + running moments", "reward_to_go", True)]
    for label, name, moments in rows:
        est = None if name is None else get_estimator(name)
        fast, naive = [], []
        for _ in range(repeats):                      # alternate, so load affects both alike
            naive.append(naive_rate(mdp, policy, n_naive, est)[0])
            fast.append(fast_rate(mdp, policy, n_fast, est, moments=moments)[0])
        ratio = max(fast) / max(naive)
        goal = f"   (goal >= {GOAL:.0f}x: {'met' if ratio >= GOAL else 'NOT met'})" if est is not None else ""
        print(f"  {label:44s} {max(fast):12.0f} {max(naive):11.0f} {ratio:7.0f}x{goal}")
    _, length = fast_rate(mdp, policy, n_fast, None, moments=False)
    print(f"  mean episode length {length:.2f} actions")


def memory(n: int) -> None:
    mdp = frozen_lake()
    policy = TabularSoftmax(np.zeros((16, 4)))
    est = get_estimator("reward_to_go")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = clock()
    acc, longest = None, 0
    for batch in iter_episode_chunks(mdp, policy, n, np.random.default_rng(3)):
        longest = max(longest, batch.T)
        m = SampleMoments.of(est.per_episode(batch))
        acc = m if acc is None else acc.merge(m)
    elapsed = clock() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    whole = n * (8 * (3 * (longest + 1)) + 8 * 16 * 4)
    print(f"memory, {n} FrozenLake episodes through reward_to_go into running moments ({elapsed:.1f} s CPU, "
          f"chunks of {chunk_size(mdp)}):")
    print(f"  peak traced allocations {peak / 2**20:.0f} MB; peak RSS {rss1 / 1024:.0f} MB (before: {rss0 / 1024:.0f} "
          f"MB); one unchunked batch would need ~{whole / 2**20:.0f} MB (padded to T = {longest}, plus [N, S, A])")
    print(f"  mean of the estimate's first component: {acc.mean[0]:.5f} (n = {acc.n})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer episodes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args()
    print(f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}; rates are episodes per CPU second of this process")
    q = args.quick
    memory(200_000 if q else 1_000_000)        # first: the peak RSS would otherwise include the other sections
    compare(frozen_lake(), n_fast=100_000 if q else 400_000, n_naive=1_000 if q else 3_000, repeats=args.repeats)
    compare(dense_random(), n_fast=5_000 if q else 20_000, n_naive=20 if q else 60, repeats=args.repeats)


if __name__ == "__main__":
    main()
