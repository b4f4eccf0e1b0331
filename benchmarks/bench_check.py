"""``pgverify check``: shared per-chunk work against every estimator recomputing its own, in one run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_check.py [--repeats R] [--env Taxi-v4 --env FrozenLake-v1]

Run by hand; never part of pytest. For each environment (gymnasium's Taxi-v4 and FrozenLake-v1, uniform policy,
the default 20 000 episodes, seed 0):

- **shared**: ``verify.checks.mc.run_check`` as ``check`` runs it: what several estimators need on a chunk (G_t,
  gamma^t V_t(s_t), gamma^t Q_t(s_t, a_t), the GAE advantages, gamma^t, the visited rows' layout, the paired
  test's pilot differences) is computed once per chunk (``verify.numerics.shared``);
- **per estimator**: the same call inside ``verify.numerics.shared.recomputing()``, where every estimator computes
  all of it itself, as ``check`` did before the cache (the baseline: the same code path, nothing else changed);
- **CLI**: ``pgverify check --gym ENV`` in a fresh process, start-up included (CPU time of the child from
  ``resource.getrusage(RUSAGE_CHILDREN)``).

CPU seconds of this process (``time.process_time``), best of ``--repeats``, the two in-process candidates taking
turns so that the load from neighbours affects both alike; the ratio is per-estimator over shared. The two runs'
results are compared (every estimator's JSON, exactly) before any time is printed.
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

from verify.checks.mc import run_check  # noqa: E402
from verify.frameworks.gym import gym_problem  # noqa: E402
from verify.numerics.shared import recomputing  # noqa: E402


def timed(fn):
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def cli_seconds(env: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "verify", "check", "--gym", env], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", help="gymnasium environment (repeatable; default Taxi-v4, FrozenLake-v1)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    envs = args.env or ["Taxi-v4", "FrozenLake-v1"]
    print(f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}; load average {os.getloadavg()[0]:.2f}; "
          f"best of {args.repeats}, CPU seconds")
    print(f"{'environment':16s} {'shared':>8s} {'per estimator':>14s} {'ratio':>6s} {'CLI check':>10s}")
    for env in envs:
        problem = gym_problem(env)
        run_check(problem)           # warm: imports and the per-MDP operator caches, for both alike
        shared_s = alone_s = float("inf")
        for i in range(args.repeats):
            for first in ((True, False) if i % 2 == 0 else (False, True)):     # alternate which runs first
                if first:
                    t, a = timed(lambda: run_check(problem))
                    shared_s = min(shared_s, t)
                else:
                    with recomputing():
                        t, b = timed(lambda: run_check(problem))
                    alone_s = min(alone_s, t)
            ja, jb = a.to_json(), b.to_json()
            if ja != jb:
                raise SystemExit(f"{env}: the shared and per-estimator runs differ; no timing printed")
        cli = min(cli_seconds(env) for _ in range(args.repeats))
        print(f"{env:16s} {shared_s:8.2f} {alone_s:14.2f} {alone_s / shared_s:5.2f}x {cli:10.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
