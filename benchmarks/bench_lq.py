"""Exact grad J of an LQ problem (verify.model.lq.lq_gradient) against PyTorch autodiff of the same objective, H = 1000.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lq.py [--sizes 10 25 50 100] [--horizon 1000] [--repeats 3]

Run by hand; never part of pytest. Needs the extra ``torch``. For each state dimension n (action dimension
m = n / 2, a random stable closed loop, dense PSD Q, R, W, Sigma0, gamma = 0.999):

- **pgverify** (``lq_gradient``, its per-problem memo cleared before each repeat): the backward value recursion (P_t, p_t, c_t) and the forward moment recursion
  (m_t, M_t) with the per-step gradient terms, numpy float64: O(H (n^3 + m n^2)).
- **autodiff** (the baseline, what a good engineer writes): J(K, k, log_std) by the same forward moment recursion
  in PyTorch float64 (E[r_t] from m_t, M_t; one matmul chain per step), then ``J.backward()``; the tape holds
  O(H n^2) and the backward pass costs about twice the forward.

Both give the same grad J (checked each run: max relative difference printed). Times are CPU seconds of this
process (``time.process_time``), best of ``--repeats``, measured alternately; one torch thread and
OPENBLAS/OMP/MKL_NUM_THREADS=1 (set before numpy is imported when run as a script). Ratio = autodiff / pgverify.
"""
from __future__ import annotations

import argparse
import os
import time

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from verify.model.io import Limits, limits_scope  # noqa: E402
from verify.model import lq as lq_module  # noqa: E402
from verify.model.lq import LQProblem, lq_gradient  # noqa: E402


def random_lq(n: int, H: int, seed: int = 0) -> LQProblem:
    rng = np.random.default_rng(seed)
    m = max(1, n // 2)

    def psd(k, scale):
        X = rng.standard_normal((k, k)) / np.sqrt(k)
        return scale * (X @ X.T + 0.1 * np.eye(k))

    A = rng.standard_normal((n, n)) / np.sqrt(n)
    A *= 0.9 / np.abs(np.linalg.eigvals(A)).max()       # a stable open loop; K small keeps it stable
    B = rng.standard_normal((n, m)) / np.sqrt(n)
    K = 0.05 * rng.standard_normal((m, n)) / np.sqrt(n)
    return LQProblem(A=A, B=B, Q=psd(n, 1.0), R=psd(m, 0.1), W=psd(n, 0.01), mu0=rng.standard_normal(n),
                     Sigma0=psd(n, 0.1), K=K, k=0.1 * rng.standard_normal(m), log_std=np.full(m, -1.0),
                     gamma=0.999, horizon=H, name=f"random n={n}")


def torch_gradient(torch, lq: LQProblem) -> tuple[float, np.ndarray]:
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)   # noqa: E731
    A, B, Q, R, W = map(t, (lq.A, lq.B, lq.Q, lq.R, lq.W))
    K, k, s = (t(a).requires_grad_() for a in (lq.K, lq.k, lq.log_std))
    m = t(lq.mu0)
    M = t(lq.Sigma0) + torch.outer(m, m)
    F, b = A + B @ K, B @ k
    S = torch.diag(torch.exp(2 * s))
    N = B @ S @ B.T + W
    Qk = Q + K.T @ R @ K
    const = k @ R @ k + torch.trace(R @ S)
    RK = R @ K
    J = torch.zeros((), dtype=torch.float64)
    w = 1.0
    for _ in range(lq.horizon):
        J = J - w * (torch.sum(Qk * M) + 2 * k @ (RK @ m) + const)
        Fm = F @ m
        M = F @ M @ F.T + torch.outer(Fm, b) + torch.outer(b, Fm) + torch.outer(b, b) + N
        m = Fm + b
        w *= lq.gamma
    J.backward()
    return float(J), np.concatenate([K.grad.numpy().ravel(), k.grad.numpy(), s.grad.numpy()])


def uncached_gradient(lq: LQProblem):
    """``lq_gradient`` computed anew: it keeps its result per problem object (a check asks for it once per
    estimator), so a repeat would time a dictionary lookup."""
    lq_module._EXACT.pop(lq, None)
    return lq_gradient(lq)


def best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return min(times), out


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--horizon", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"exact grad J of random LQ problems, H = {args.horizon}, m = n / 2, CPU seconds (best of {args.repeats})")
    print(f"{'n':>5} {'d':>6} {'pgverify (s)':>13} {'autodiff (s)':>13} {'ratio':>7} {'max rel diff':>13}")
    with limits_scope(Limits(max_work=10**13)):
        for n in args.sizes:
            lq = random_lq(n, args.horizon)
            t_ex, res = best(lambda: uncached_gradient(lq), args.repeats)
            t_ad, (J, g) = best(lambda: torch_gradient(torch, lq), args.repeats)
            rel = float(np.abs(res.flat - g).max() / np.abs(g).max())
            print(f"{n:>5} {lq.d:>6} {t_ex:>13.3f} {t_ad:>13.3f} {t_ad / t_ex:>7.2f} {rel:>13.1e}")


if __name__ == "__main__":
    main()
