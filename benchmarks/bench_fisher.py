"""The exact Fisher matrix by DP, printed as ratios against baselines measured in the same run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fisher.py [--quick]

Sections:
1. Same order as grad J: ``verify.checks.theory.fisher`` (occupancy DP + the block-diagonal tabular blocks) against
   ``verify.numerics.exact.gradient`` (the DP of grad J) on slippery gridworlds up to S A = 10^4 parameters, finite
   horizon (H = 100) and horizon null (one sparse LU solve each).
2. Against enumeration: ``fisher_by_enumeration`` (every trajectory, sum_t gamma^t psi psi^T) on (S, A) = (2, 2)
   random MDPs as H grows: the trajectory count grows as (S A)^H, the DP's cost linearly in H.
3. Against autodiff of the DP in PyTorch: F as the Hessian (``torch.autograd.functional.hessian``) of the
   occupancy-weighted KL, sum_s omega(s) KL(pi_theta(.|s) || pi_theta'(.|s)) at theta' = theta, with omega from
   the same DP (the standard way to get a Fisher matrix from autodiff, as TRPO's Fisher-vector products do),
   against forming the dense F from the DP's blocks (``FisherMatrix.dense``), on gridworlds of S A = 100 .. 1600
   parameters (the Hessian is n x n: 10^8 entries at 10^4). Skipped without torch.

Times are the best of ``repeat`` runs (ms per call); the machine is shared, so read the ratios, which are measured
in one run, not the absolute times. No timing is asserted anywhere.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_models import gridworld  # noqa: E402

from verify import theory as T  # noqa: E402
from verify.numerics.exact import gradient  # noqa: E402
from verify.model.mdp import TabularMDP  # noqa: E402
from verify.model.policy import TabularSoftmax  # noqa: E402


def best_ms(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


def _with(S, horizon, seed=0):
    mdp = gridworld(S, horizon=horizon, gamma=0.99, seed=seed)
    return mdp, TabularSoftmax(np.random.default_rng(seed).normal(size=(mdp.n_states, mdp.n_actions)))


def section_same_order(sizes, repeat):
    print("1. Fisher by DP vs grad J by DP (same MDP, same policy): ratio fisher / gradient")
    print(f"{'S A':>7} {'horizon':>8} {'grad J ms':>10} {'Fisher ms':>10} {'ratio':>6}")
    for S in sizes:
        for horizon in (100, None):
            mdp, pol = _with(S, horizon)
            g = best_ms(lambda: gradient(mdp, pol), repeat)
            f = best_ms(lambda: T.fisher(mdp, pol), repeat)
            print(f"{mdp.n_states * mdp.n_actions:>7} {str(horizon):>8} {g:>10.2f} {f:>10.2f} {f / g:>6.2f}")


def _random_mdp(H, seed):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(2), size=(2, 2))
    return TabularMDP(initial=[0.5, 0.5], transitions=P, rewards=rng.normal(size=(2, 2)), gamma=0.9, horizon=H), \
        TabularSoftmax(rng.normal(size=(2, 2)))


def section_enumeration(horizons, repeat):
    print("\n2. Fisher by DP vs by enumerating trajectories, (S, A) = (2, 2): ratio enumeration / DP")
    print(f"{'H':>3} {'trajectories':>13} {'DP ms':>8} {'enum ms':>9} {'ratio':>8} {'max |diff|':>10}")
    for H in horizons:
        mdp, pol = _random_mdp(H, H)
        from verify.numerics.exact import count_trajectories
        d = best_ms(lambda: T.fisher(mdp, pol).dense(), repeat)
        e = best_ms(lambda: T.fisher_by_enumeration(mdp, pol), max(1, repeat // 2))
        diff = float(np.abs(T.fisher(mdp, pol).dense() - T.fisher_by_enumeration(mdp, pol)).max())
        print(f"{H:>3} {count_trajectories(mdp):>13.0f} {d:>8.2f} {e:>9.2f} {e / d:>8.1f} {diff:>10.1e}")


def section_torch(sizes, repeat):
    try:
        import torch
    except ImportError:
        print("\n3. skipped: torch is not installed")
        return
    torch.set_num_threads(1)
    print("\n3. Fisher by DP (dense n x n) vs the Hessian of the occupancy-weighted KL by PyTorch autodiff, H = 100: "
          "ratio autodiff / DP")
    print(f"{'S A':>6} {'DP ms':>8} {'torch ms':>9} {'ratio':>7} {'max |diff|':>10}")
    for S in sizes:
        mdp, pol = _with(S, 100)
        omega = torch.tensor(T.occupancy(mdp, pol).omega)
        theta = torch.tensor(pol.theta)
        logp = torch.log_softmax(theta, dim=1)

        def kl(th):
            return (omega[:, None] * logp.exp() * (logp - torch.log_softmax(th, dim=1))).sum()

        def by_torch():
            return torch.autograd.functional.hessian(kl, theta).reshape(theta.numel(), theta.numel())

        d = best_ms(lambda: T.fisher(mdp, pol).dense(), repeat)
        t = best_ms(by_torch, max(1, repeat // 2))
        diff = float(np.abs(T.fisher(mdp, pol).dense() - by_torch().numpy()).max())
        print(f"{mdp.n_states * mdp.n_actions:>6} {d:>8.2f} {t:>9.1f} {t / d:>7.0f} {diff:>10.1e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = p.parse_args()
    repeat = 3 if args.quick else 7
    section_same_order((100, 625, 2500) if not args.quick else (100, 2500), repeat)
    section_enumeration((2, 4, 6, 8) if not args.quick else (2, 6), repeat)
    section_torch((25, 100, 400) if not args.quick else (25, 100), repeat)


if __name__ == "__main__":
    main()
