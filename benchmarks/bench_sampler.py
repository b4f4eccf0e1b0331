"""pgverify's sampler against honest baselines: a per-step ``bisect`` loop and a compiled (numba) loop.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_sampler.py            # ~1 min on 2 busy cores
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_sampler.py --quick    # fewer episodes

Run by hand; never part of pytest. All three samplers draw the same distribution (checked first: mean returns
within 5 standard errors) from the same joint table p(a, s' | s) = pi(a|s) P(s'|s, a) and record what an estimator
needs (s_t, a_t, r_t per step and the episode lengths):

- **pgverify**: ``verify.sampler.iter_episode_chunks`` (all episodes advance together; per-state alias tables),
  producing the ``Episodes`` batches the estimators read.
- **bisect loop**: what a good engineer writes in plain Python: per-state cumulative lists, uniforms drawn from
  numpy in blocks of 2^16, ``bisect.bisect_right`` per step, flat output lists. (The former baseline,
  ``rng.choice`` for every draw, was a strawman 17x slower than this; it is no longer measured.)
- **compiled**: a single-thread numba loop over episodes and steps with the same alias tables and numba's own
  generator (the compiled limit of the per-step approach), logging into preallocated arrays, if numba is
  installed (``pip install numba``; optional, never a dependency). Its first call (JIT compilation) is not timed.

Times are CPU seconds of this process (``time.process_time``; wall time on a shared machine mostly measures the
neighbours), best of ``--repeats``, the candidates taking turns; reported per sampled step (ns/step) and as ratios
against the bisect loop and the compiled loop measured in this run.
Problems: FrozenLake-v1 4x4 (slippery, H = 100) and Taxi-v4 (H = 200), uniform policy; imported from gymnasium
when it is installed, else FrozenLake is built from its documented rules and Taxi is skipped.
"""
from __future__ import annotations

import argparse
import bisect
import os
import sys
import time

if __name__ == "__main__":      # BLAS reads its thread count once, when numpy is first imported
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from verify.mdp import TabularMDP  # noqa: E402
from verify.policy import TabularSoftmax  # noqa: E402
from verify.sampler import iter_episode_chunks, joint_table  # noqa: E402

clock = time.process_time


def frozen_lake(horizon: int = 100) -> TabularMDP:
    """FrozenLake 4x4 from the documented rules (intended direction or either perpendicular one, 1/3 each)."""
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


def problems() -> list[TabularMDP]:
    try:
        from verify.gym import gym_problem
        return [gym_problem("FrozenLake-v1").mdp, gym_problem("Taxi-v4").mdp]
    except Exception as exc:  # noqa: BLE001  (gymnasium missing: the documented FrozenLake only)
        print(f"(gymnasium unavailable: {exc}; Taxi skipped)")
        return [frozen_lake()]


# --- the samplers -----------------------------------------------------------------------------------------------

def run_pgverify(mdp, policy, n, seed):
    steps = 0
    for batch in iter_episode_chunks(mdp, policy, n, np.random.default_rng(seed)):
        steps += int(batch.lengths.sum())
    return steps


def bisect_tables(mdp, policy):
    """Per-state cumulative probabilities and (a, s', r, ends) of the joint table, as Python lists."""
    tab = joint_table(mdp, policy, alias=False)
    rows = []
    start = 0
    for s in range(mdp.n_states):
        k = int(tab.n_entries[s])
        sl = slice(start, start + k)
        cum = (tab.keys[sl] - s).tolist()
        rows.append((cum, tab.action[sl].tolist(), tab.next_state[sl].tolist(), tab.reward[sl].tolist(),
                     tab.ends[sl].tolist()))
        start += k
    init = np.cumsum(mdp.initial).tolist()
    return rows, init, mdp.terminal.tolist()


def run_bisect(mdp, policy, n, seed, tables):
    rows, init, terminal = tables
    rng = np.random.default_rng(seed)
    block = rng.random(1 << 16).tolist()
    i = 0
    H = mdp.horizon
    states, actions, rewards, lengths = [], [], [], []
    for _ in range(n):
        if i >= len(block) - H - 1:
            block, i = rng.random(1 << 16).tolist(), 0
        s = min(bisect.bisect_right(init, block[i]), len(init) - 1)
        i += 1
        t = 0
        while t < H and not terminal[s]:
            cum, act, nxt, rew, ends = rows[s]
            k = min(bisect.bisect_right(cum, block[i]), len(cum) - 1)
            i += 1
            states.append(s)
            actions.append(act[k])
            rewards.append(rew[k])
            t += 1
            if ends[k]:
                break
            s = nxt[k]
        lengths.append(t)
    return len(states)


def compiled_sampler():
    """The numba loop (None without numba)."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=False)
    def loop(n, H, K, init_cum, accept, alias, action, next_state, reward, ends, terminal, seed):
        np.random.seed(seed)
        cap = n * H
        s_log = np.empty(cap, np.int64)
        a_log = np.empty(cap, np.int64)
        r_log = np.empty(cap, np.float64)
        lengths = np.empty(n, np.int64)
        m = 0
        for e in range(n):
            x = np.random.random()
            s = 0
            while s < init_cum.size - 1 and init_cum[s] <= x:
                s += 1
            t = 0
            while t < H and not terminal[s]:
                y = np.random.random() * K
                j = min(int(y), K - 1)
                k = s * K + j
                if y - j >= accept[k]:
                    k = alias[k]
                s_log[m] = s
                a_log[m] = action[k]
                r_log[m] = reward[k]
                m += 1
                t += 1
                if ends[k]:
                    break
                s = next_state[k]
            lengths[e] = t
        return m

    def run(mdp, policy, n, seed, tab):
        # numba's own generator (Mersenne Twister) inside the loop: the RNG's cost counts, as it does for pgverify.
        return loop(n, mdp.horizon, tab.width, np.cumsum(mdp.initial), tab.accept, tab.alias, tab.action,
                    tab.next_state, tab.reward, tab.ends, mdp.terminal, seed)
    return run


def mean_return_check(mdp, policy, tables) -> str:
    full = np.concatenate([b.r_t.sum(axis=1) for b in iter_episode_chunks(mdp, policy, 20_000,
                                                                            np.random.default_rng(9))])
    rows, init, terminal = tables
    rng = np.random.default_rng(10)
    totals = []
    for _ in range(4_000):
        s, total, t = min(bisect.bisect_right(init, rng.random()), len(init) - 1), 0.0, 0
        while t < mdp.horizon and not terminal[s]:
            cum, act, nxt, rew, ends = rows[s]
            k = min(bisect.bisect_right(cum, rng.random()), len(cum) - 1)
            total += rew[k]
            t += 1
            if ends[k]:
                break
            s = nxt[k]
        totals.append(total)
    loop = np.array(totals)
    z = (full.mean() - loop.mean()) / np.sqrt(full.var() / full.size + loop.var() / loop.size)
    return f"mean return pgverify {full.mean():.4f}, bisect loop {loop.mean():.4f} (z = {z:+.2f})"


def best_ns_per_step(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        steps = fn()
        best = min(best, (clock() - t0) / max(steps, 1))
    return best * 1e9


def compare(mdp, n_fast: int, n_slow: int, repeats: int, compiled) -> None:
    policy = TabularSoftmax(np.zeros((mdp.n_states, mdp.n_actions)))
    tables = bisect_tables(mdp, policy)
    tab = joint_table(mdp, policy, alias=True)
    print(f"\n{mdp.name}: S = {mdp.n_states}, A = {mdp.n_actions}, H = {mdp.horizon}, joint-table width "
          f"{tab.width}; pgverify/compiled N = {n_fast}, bisect N = {n_slow}; best of {repeats}")
    print(f"  sanity: {mean_return_check(mdp, policy, tables)}")
    if compiled is not None:
        compiled(mdp, policy, 10, 0, tab)          # JIT compilation, not timed
    ours = slow = comp = float("inf")
    for r in range(repeats):                        # take turns, so load affects all alike
        ours = min(ours, best_ns_per_step(lambda: run_pgverify(mdp, policy, n_fast, r), 1))
        slow = min(slow, best_ns_per_step(lambda: run_bisect(mdp, policy, n_slow, r, tables), 1))
        if compiled is not None:
            comp = min(comp, best_ns_per_step(lambda: compiled(mdp, policy, n_fast, r, tab), 1))
    print(f"  {'sampler':34s} {'ns/step':>9s} {'vs bisect loop':>15s} {'vs compiled':>12s}")
    print(f"  {'pgverify (vectorised, alias)':34s} {ours:9.1f} {slow / ours:14.1f}x "
          f"{'' if compiled is None else f'{ours / comp:11.2f}x'}")
    print(f"  {'bisect loop (plain Python)':34s} {slow:9.1f} {1.0:14.1f}x "
          f"{'' if compiled is None else f'{slow / comp:11.1f}x'}")
    if compiled is not None:
        print(f"  {'compiled loop (numba, 1 thread)':34s} {comp:9.1f} {slow / comp:14.1f}x {1.0:11.2f}x")
        print(f"  goal: pgverify within 2x of the compiled loop: {ours / comp:.2f}x "
              f"({'met' if ours / comp <= 2 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer episodes")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    compiled = compiled_sampler()
    print(f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}; numba "
          f"{'available' if compiled else 'not installed: no compiled reference'}; python {sys.version.split()[0]}")
    for mdp in problems():
        compare(mdp, n_fast=50_000 if args.quick else 200_000, n_slow=5_000 if args.quick else 20_000,
                repeats=args.repeats, compiled=compiled)


if __name__ == "__main__":
    main()
