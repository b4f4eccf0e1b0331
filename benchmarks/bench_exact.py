"""Exact-gradient speed, printed as ratios against baselines measured in the same run.

    python benchmarks/bench_exact.py [--quick] [--threads N]

Sections:
1. DP vs trajectory enumeration as the horizon grows, (S, A) = (2, 2), H = 2..8.
2. DP on FrozenLake 4x4 H = 100, 8x8 H = 200 and Taxi H = 200: the dense prototype (pgverify's first DP, kept
   below as the baseline) against the current DP with dense and with scipy.sparse transitions.
3. Infinite-horizon solve with ~1000 states: a random dense MDP (S = 1000, A = 4) and FrozenLake on a random
   32x32 map (1024 states, sparse), the first solve (two LU factorizations) against the current one.
4. BLAS threads: section 3's dense solve with one BLAS thread and with OpenBLAS's default, in fresh
   processes taking turns.

Times are the best of ``repeat`` runs (the least disturbed by other load); targets from issue 7 are printed
next to them for reference, never asserted. ``--threads N`` sets OPENBLAS/OMP/MKL_NUM_THREADS before numpy loads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--threads", type=int, help="BLAS threads (set before numpy is imported)")
    p.add_argument("--only-solve-ms", action="store_true", help=argparse.SUPPRESS)   # section 4's subprocess
    return p.parse_args()


ARGS = _parse()
if ARGS.threads:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

from verify.exact import _live_operator, gradient  # noqa: E402
from verify.mdp import TabularMDP  # noqa: E402
from verify.policy import TabularSoftmax  # noqa: E402

REPEAT = 3 if ARGS.quick else 7


def best_ms(fn, repeat: int = REPEAT) -> float:
    """Best of ``repeat`` runs, each long enough (>= 20 ms or 1 call) to time reliably, in ms per call."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    loops = max(1, int(0.02 / max(once, 1e-9)))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - t0) / loops)
    return best * 1e3


# --- baselines: pgverify's first dense DP and solve, verbatim in substance -------------------------------------------

def reference_dp(mdp: TabularMDP, policy) -> tuple[float, np.ndarray]:
    P, pi, H, g = mdp.transitions, policy.probs, mdp.horizon, mdp.gamma
    alive = (~mdp.terminal).astype(float)
    rbar = mdp.expected_reward
    P_alive = P * alive[None, None, :]
    Q = np.empty((H, *rbar.shape))
    V = np.zeros(mdp.n_states)
    for k in range(1, H + 1):
        Qk = rbar + g * (P_alive @ V)
        Q[H - k] = Qk
        V = (pi * Qk).sum(axis=1)
    d0 = mdp.initial * alive
    d = np.empty((H, mdp.n_states))
    d[0] = d0
    P_pi = np.einsum("sa,sat->st", pi, P_alive)
    for t in range(1, H):
        d[t] = g * (d[t - 1] @ P_pi)
    W = (d[..., :, None] * pi * Q).sum(axis=0)
    return float(d0 @ V), policy.score_contract(W)


def reference_solve(mdp: TabularMDP, policy) -> tuple[float, np.ndarray]:
    P, pi, g = mdp.transitions, policy.probs, mdp.gamma
    idx = np.flatnonzero(~mdp.terminal)
    P_aa = P[np.ix_(idx, np.arange(mdp.n_actions), idx)]
    pi_a, rbar = pi[idx], mdp.expected_reward[idx]
    A_mat = np.eye(idx.size) - g * np.einsum("sa,sat->st", pi_a, P_aa)
    V = np.linalg.solve(A_mat, (pi_a * rbar).sum(axis=1))
    Q = rbar + g * (P_aa @ V)
    occupancy = np.linalg.solve(A_mat.T, mdp.initial[idx])
    W = np.zeros_like(pi)
    W[idx] = occupancy[:, None] * pi_a * Q
    return float(mdp.initial[idx] @ V), policy.score_contract(W)


# --- problems ---------------------------------------------------------------------------------------------------------

def random_mdp(S: int, A: int, H: int | None, rng: np.random.Generator, *, gamma: float = 0.95) -> TabularMDP:
    return TabularMDP(initial=rng.dirichlet(np.ones(S)), transitions=rng.dirichlet(np.ones(S), size=(S, A)),
                      rewards=rng.normal(size=(S, A)), gamma=gamma, horizon=H)


def gym_mdp(env_id: str, horizon, **kwargs) -> TabularMDP | None:
    try:
        from verify.gym import gym_problem
        return gym_problem(env_id, kwargs, horizon=horizon).mdp
    except Exception as exc:  # gymnasium missing: skip that row
        print(f"  (skipped {env_id}: {exc})")
        return None


def policy_for(mdp: TabularMDP, rng: np.random.Generator) -> TabularSoftmax:
    return TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))


def check(a, b, what: str) -> None:
    J, grad = a if isinstance(a, tuple) else (a.J, a.grad)
    scale = 1 + abs(J) + float(np.abs(grad).max())
    if abs(J - b.J) > 1e-9 * scale or float(np.abs(grad - b.grad).max()) > 1e-9 * scale:
        raise SystemExit(f"{what}: results disagree")


# --- sections -----------------------------------------------------------------------------------------------------------

def section_enumeration(rng) -> None:
    print("1. DP vs trajectory enumeration, (S, A) = (2, 2)")
    print(f"   {'H':>3} {'trajectories':>13} {'enumerate ms':>13} {'dp ms':>8} {'enumerate / dp':>15}")
    for H in range(2, 9):
        mdp = random_mdp(2, 2, H, rng)
        pol = policy_for(mdp, rng)
        check(gradient(mdp, pol, "enumerate"), gradient(mdp, pol, "dp"), f"H={H}")
        t_enum = best_ms(lambda: gradient(mdp, pol, "enumerate"))
        t_dp = best_ms(lambda: gradient(mdp, pol, "dp"))
        print(f"   {H:>3} {4 ** H:>13} {t_enum:>13.3f} {t_dp:>8.3f} {t_enum / t_dp:>14.1f}x")


def section_dp(rng) -> None:
    print("\n2. DP on gymnasium toy-text MDPs: first dense prototype vs current (dense / sparse operator)")
    print(f"   {'problem':<24} {'S':>4} {'prototype ms':>13} {'dense ms':>9} {'sparse ms':>10} {'auto':>7} "
          f"{'prototype / auto':>17} {'target':>8}")
    rows = [("FrozenLake 4x4, H=100", gym_mdp("FrozenLake-v1", 100), "~1 ms"),
            ("FrozenLake 8x8, H=200", gym_mdp("FrozenLake-v1", 200, map_name="8x8"), "~2.7 ms"),
            ("Taxi, H=200", gym_mdp("Taxi-v4", 200), "< 10 ms")]
    for label, mdp, target in rows:
        if mdp is None:
            continue
        pol = policy_for(mdp, rng)
        auto = gradient(mdp, pol, "dp")
        check(reference_dp(mdp, pol), auto, label)
        check(gradient(mdp, pol, "dp", sparse=True), auto, label)
        t_ref = best_ms(lambda: reference_dp(mdp, pol))
        t_dense = best_ms(lambda: gradient(mdp, pol, "dp", sparse=False))
        t_sparse = best_ms(lambda: gradient(mdp, pol, "dp", sparse=True))
        t_auto = best_ms(lambda: gradient(mdp, pol, "dp"))
        kind = "sparse" if _live_operator(mdp).is_sparse else "dense"
        print(f"   {label:<24} {mdp.n_states:>4} {t_ref:>13.2f} {t_dense:>9.2f} {t_sparse:>10.2f} {kind:>7} "
              f"{t_ref / t_auto:>16.1f}x {target:>8}   (auto {t_auto:.2f} ms)")


def solve_problems(rng):
    yield "random dense, S=1000 A=4", random_mdp(1000, 4, None, rng, gamma=0.99)
    try:
        from gymnasium.envs.toy_text.frozen_lake import generate_random_map
        desc = generate_random_map(size=32, p=0.9, seed=0)
        yield "FrozenLake 32x32 (sparse)", gym_mdp("FrozenLake-v1", None, desc=desc)
    except ImportError:
        print("  (skipped FrozenLake 32x32: gymnasium is not installed)")


def section_solve(rng) -> None:
    print("\n3. Infinite-horizon solve, ~1000 states: first solve (two LUs) vs current (one LU, sparse when it pays)")
    print(f"   {'problem':<26} {'S':>5} {'first ms':>9} {'current ms':>11} {'first / current':>16} {'target':>8}")
    for label, mdp in solve_problems(rng):
        if mdp is None:
            continue
        pol = policy_for(mdp, rng)
        res = gradient(mdp, pol, "solve")
        check(reference_solve(mdp, pol), res, label)
        t_ref = best_ms(lambda: reference_solve(mdp, pol))
        t_new = best_ms(lambda: gradient(mdp, pol, "solve"))
        print(f"   {label:<26} {mdp.n_states:>5} {t_ref:>9.1f} {t_new:>11.1f} {t_ref / t_new:>15.1f}x {'~20 ms':>8}")


def dense_solve_ms() -> float:
    rng = np.random.default_rng(0)
    mdp = random_mdp(1000, 4, None, rng, gamma=0.99)
    pol = policy_for(mdp, rng)
    return best_ms(lambda: gradient(mdp, pol, "solve"))


def section_threads() -> None:
    print("\n4. BLAS threads: the dense 1000-state solve, one BLAS thread vs OpenBLAS's default "
          f"({os.cpu_count()} CPUs); fresh processes, alternated so both see the same load")
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    default = {k: v for k, v in os.environ.items() if k not in names}
    envs = {"one thread": dict(default, **{k: "1" for k in names}), "default threads": default}
    best = {label: float("inf") for label in envs}
    for _ in range(2 if ARGS.quick else 3):
        for label, env in envs.items():
            out = subprocess.run([sys.executable, __file__, "--only-solve-ms", "--quick"],
                                 capture_output=True, text=True, env=env, check=True)
            best[label] = min(best[label], json.loads(out.stdout)["ms"])
    one, many = best["one thread"], best["default threads"]
    print(f"   one thread {one:.1f} ms, default threads {many:.1f} ms: default / one = {many / one:.2f}")


def main() -> None:
    if ARGS.only_solve_ms:
        print(json.dumps({"ms": dense_solve_ms()}))
        return
    rng = np.random.default_rng(0)
    print(f"pgverify exact-gradient benchmark (best of {REPEAT}; numpy {np.__version__}, "
          f"BLAS threads env={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})\n")
    section_enumeration(rng)
    section_dp(rng)
    section_solve(np.random.default_rng(0))
    section_threads()


if __name__ == "__main__":
    main()
