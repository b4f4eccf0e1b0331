"""Scale: sparse MDPs with S = 10^3 ... 10^5 states end to end (construct, DP, sample, estimate, test).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_scale.py                 # S = 1e3, 1e4, 1e5; ~1 min
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_scale.py --sizes 1000    # one size

Run by hand; never part of pytest. The MDP is the slippery gridworld of ``benchmarks/scale_models.py`` (A = 4,
<= 3 successors per pair, 2 % holes, H = 200, gamma = 1) under a random softmax policy (theta ~ 0.3 N(0, 1)).
Each size runs in a fresh process, so its peak RSS (``resource.getrusage``, ru_maxrss) is its own. Stages, each
timed in CPU seconds of the process (``time.process_time``) and with its peak traced allocation (``tracemalloc``,
in a second, untimed pass):

- construct: ``TabularMDP`` from the sparse rows (as an MDP file holds them; the rows themselves are given);
- DP: exact J and grad J (``verify.exact.gradient``; the operator is built here);
- sample: 20 000 episodes (``verify.sampler.iter_episode_chunks``);
- estimate: the reward_to_go estimator on those chunks and its sample moments, as mc computes them (visited rows
  and variances beyond 256 parameters, dense values and the full scatter below);
- mc: ``verify.mc.run_mc(problem, "reward_to_go", episodes=20_000)`` end to end (exact gradient, enumeration
  attempt, sampling, estimator, moments, test).

Ratios measured in the same run: at the smallest size the same MDP is also built dense and differentiated with
the dense operator (the former storage); at every size ``mc / (sample + estimate)`` says what the test adds to the
work it cannot avoid. Goals (issue: S = 10^5): construct < 1 s, DP < 2 s, mc < 10 s, peak RSS < 1 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_models import gridworld_rows  # noqa: E402

EPISODES = 20_000
GOALS = {"construct": 1.0, "DP": 2.0, "mc": 10.0}


def stage(fn, results: dict, name: str):
    """Run ``fn`` twice: timed, then under tracemalloc; record CPU seconds and peak traced MB. Returns fn()."""
    t0 = time.process_time()
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001  (a stage that cannot run at this size is reported, not fatal)
        results[name] = {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
        return None
    seconds = time.process_time() - t0
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    results[name] = {"cpu_s": seconds, "peak_mb": peak / 2**20}
    return out


def one_size(S: int) -> dict:
    import scipy.sparse.linalg  # noqa: F401  (imported before timing: start-up is bench_startup.py's business)

    from verify.estimators import get_estimator
    from verify.exact import gradient
    from verify.mc import FULL_MOMENTS_MAX_D, _rows, run_mc
    from verify.stats import SampleMoments
    from verify.mdp import TabularMDP
    from verify.policy import TabularSoftmax
    from verify.problem import Problem
    from verify.sampler import iter_episode_chunks

    trans, rew, terminal, initial, S = gridworld_rows(S)
    results: dict = {"S": S, "nnz": int(len(trans))}

    def construct():
        return TabularMDP(initial=initial, transitions={"sparse": trans}, rewards={"sparse": rew}, terminal=terminal,
                          gamma=1.0, horizon=200, states=S, actions=4, name=f"gridworld{S}")

    mdp = stage(construct, results, "construct")
    policy = TabularSoftmax(0.3 * np.random.default_rng(1).normal(size=(S, 4)))
    problem = Problem(mdp, policy)

    def dp():
        from verify import exact
        exact._OPERATORS.pop(mdp, None)          # build the operator inside the stage
        return gradient(mdp, policy)

    stage(dp, results, "DP")

    def sample():
        return [b for b in iter_episode_chunks(mdp, policy, EPISODES, np.random.default_rng(0))]

    batches = stage(sample, results, "sample")
    if batches is not None:
        results["steps"] = int(sum(int(b.lengths.sum()) for b in batches))
        est = get_estimator("reward_to_go")
        # What mc computes per chunk: the estimates (visited rows beyond 256 parameters) and their moments.
        by_rows = S * 4 > FULL_MOMENTS_MAX_D
        stage(lambda: [_rows(est, b, policy).moments(b.n) if by_rows else SampleMoments.of(est.per_episode(b))
                       for b in batches], results, "estimate")
        del batches
    res = stage(lambda: run_mc(problem, "reward_to_go", episodes=EPISODES, seed=0), results, "mc")
    if res is not None:
        results["verdict"] = res.verdict
        results["test"] = res.test.test
    if S <= 2_000:       # the former dense storage, same MDP: the in-run baseline
        dense_P = mdp.transitions.copy()
        dense_r = mdp.rewards.copy()
        stage(lambda: TabularMDP(initial=initial, transitions=dense_P, rewards=dense_r, terminal=terminal,
                                 gamma=1.0, horizon=200), results, "construct (dense input)")
        stage(lambda: gradient(mdp, policy, sparse=False), results, "DP (dense operator)")
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def report(all_results: list[dict]) -> None:
    print(f"slippery gridworld, A = 4, H = 200, {EPISODES} episodes; CPU s (peak traced MB) per stage")
    names = ["construct", "DP", "sample", "estimate", "mc"]
    print(f"{'S':>7s} {'nnz':>8s} " + " ".join(f"{n:>17s}" for n in names) + f" {'peak RSS':>9s} {'mc/(s+e)':>9s}")
    for r in all_results:
        cells = []
        for n in names:
            x = r.get(n, {})
            cells.append(f"{'n/a':>17s}" if "cpu_s" not in x else f"{x['cpu_s']:8.2f} ({x['peak_mb']:6.0f})")
        s_e = sum(r.get(n, {}).get("cpu_s", float("nan")) for n in ("sample", "estimate"))
        ratio = r.get("mc", {}).get("cpu_s", float("nan")) / s_e
        print(f"{r['S']:7d} {r['nnz']:8d} " + " ".join(cells) + f" {r['peak_rss_mb']:8.0f}M {ratio:8.2f}x")
        for n in names:
            if "error" in r.get(n, {}):
                print(f"        {n}: not run at this size: {r[n]['error']}")
        for n, base in (("construct (dense input)", "construct"), ("DP (dense operator)", "DP")):
            if n in r and "cpu_s" in r[n]:
                ratio = r[n]["cpu_s"] / max(r[base]["cpu_s"], 1e-9)
                print(f"        {n}: {r[n]['cpu_s']:.3f} s ({r[n]['peak_mb']:.0f} MB) vs sparse "
                      f"{r[base]['cpu_s']:.3f} s ({r[base]['peak_mb']:.0f} MB): sparse {ratio:.1f}x faster")
        if "verdict" in r:
            print(f"        mc verdict: {r['verdict']} ({r['test']} test)")
    big = max(all_results, key=lambda r: r["S"])
    print(f"goals at S = {big['S']}: " + ", ".join(
        f"{n} {big[n]['cpu_s']:.2f} s (< {g:g} s: {'met' if big[n]['cpu_s'] < g else 'NOT met'})"
        if "cpu_s" in big.get(n, {}) else f"{n} not run" for n, g in GOALS.items())
        + f", peak RSS {big['peak_rss_mb']:.0f} MB (< 1024: {'met' if big['peak_rss_mb'] < 1024 else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)      # child process: one size, JSON on stdout
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one)))
        return
    results = []
    for S in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "--one", str(S)], capture_output=True, text=True)
        if proc.returncode:
            print(f"S = {S}: the child failed:\n{proc.stderr[-2000:]}")
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if results:
        report(results)


if __name__ == "__main__":
    main()
