"""Scale: the slippery gridworld at S = 10^4 ... 10^6 states, end to end: CPU seconds, peak memory, the budget.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_scale.py                              # S = 1e4, 1e5; ~1 min
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_scale.py --sizes 10000 100000 1000000 --compare REV

Run by hand; never part of pytest (S = 10^6 needs a few GB and a few minutes: run it alone). The MDP is the
slippery gridworld of ``benchmarks/scale_models.py`` (A = 4, <= 3 successors per pair, 2 % holes, H = 200,
gamma = 1, the start row uniform) under a random softmax policy (theta ~ 0.3 N(0, 1)).

Each (tree, size) runs in a fresh process. Stages, each run once:

- construct: ``TabularMDP`` from the sparse rows (as an MDP file holds them; the rows themselves are given);
- gradient: exact J and grad J (``verify.exact.gradient``; the live-state operator is built inside the stage);
- mc: ``verify.mc.run_mc(problem, "reward_to_go", episodes=20_000)`` from cold caches, end to end (exact
  gradient, enumeration attempt, sampling, the estimator, the paired test's references and their value tables);
- sample, estimate: the work mc cannot avoid (the 20 000 episodes; reward_to_go's visited rows and moments), for
  the ratio mc / (sample + estimate); at S <= 2000 also the dense input and the dense operator (the former
  storage) as the sparse model's in-run baseline.

Per stage: CPU seconds of the process (``time.process_time``) and the peak RSS increase: the kernel's high-water
mark (VmHWM) is reset before the stage (``/proc/self/clear_refs``) and read after it, minus the RSS before (after
``malloc_trim``, so that memory an earlier stage freed is not silently reused). For
this tree, the budget's estimate of the stage (what ``--max-memory`` checks: ``verify.model.problem.model_bytes``,
``verify.exact.gradient_bytes``, ``verify.mc.run_bytes``) and estimate / measured.

Each child runs with glibc's and numpy's default allocator settings, as the ``pgverify`` commands on a problem of
more than ``verify._startup.SMALL_PAIRS`` state-action pairs and a program importing the library do.
``--allocator bounded`` applies those of the bounded commands and of small problems (``verify/_startup.reuse_memory``:
freed memory kept for reuse, no transparent huge pages), ``both`` runs each size under both, one after the other,
and prints their ratio: the measurement behind ``SMALL_PAIRS``.

``--compare REV`` also measures the ``verify`` package of a former revision (``git archive REV verify``) in the same
run, under a memory limit high enough to let it run: the in-run baseline (docs/performance.md: the revision before the
sparse value kernel, the horizon-limited live set and the budget's new estimates).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EPISODES = 20_000
GOALS = {10**6: {"gradient": 15.0, "mc": 20.0}}      # issue 28, CPU s at S = 10^6 within the default 2 GiB budget
DEFAULT_BUDGET = 2 * 2**30
_LIBC = ctypes.CDLL("libc.so.6")


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def stage(fn, results: dict, name: str):
    """Run ``fn`` once: CPU seconds and peak RSS increase (VmHWM reset before). Returns fn()."""
    gc.collect()
    _LIBC.malloc_trim(0)      # freed heap back to the system: the stage's allocations show in RSS, not reuse
    rss0 = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t0 = time.process_time()
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001  (a stage that cannot run is reported, not fatal)
        results[name] = {"error": f"{type(exc).__name__}: {str(exc)[:160]}"}
        return None
    results[name] = {"cpu_s": time.process_time() - t0, "peak_mb": (_status("VmHWM") - rss0) / 2**20}
    return out


def _cold(mdp) -> None:
    """Drop every per-MDP cache (operators, value kernels, value tables) a tree may have."""
    from verify import exact
    for mod in (exact, sys.modules.get("verify.numerics.backward")):
        for attr in ("_OPERATORS", "_VALUES", "_KERNELS", "_HORIZON"):
            getattr(mod, attr, {}).pop(mdp, None)


def kernel_step_ms(mdp, policy, repeats: int = 10) -> dict:
    """CPU ms of one backward step Q_t = rbar + gamma P V_{t+1}, V_t = sum_a pi Q_t over every non-terminal state:
    the former successor-list kernel (``np.bincount``, as ``exact._backward`` had it) against the CSR kernel."""
    from verify.numerics.backward import value_kernel
    succ, S, A = mdp.successors, mdp.n_states, mdp.n_actions
    prob_alive = np.where(mdp.terminal[succ.next_state], 0.0, succ.prob)
    rbar, pi = mdp.expected_reward, policy.probs
    v = np.random.default_rng(0).random(S)
    kernel = value_kernel(mdp)
    pi_k, v_k = np.ascontiguousarray(pi[kernel.states]), v[kernel.states]

    def former():
        Q = rbar + mdp.gamma * np.bincount(succ.pair, weights=prob_alive * v[succ.next_state],
                                           minlength=S * A).reshape(S, A)
        return (pi * Q).sum(axis=1)

    def csr():
        Q = kernel.q_values(v_k)
        Q *= pi_k
        return Q.sum(axis=1)

    out = {}
    for name, fn in (("bincount", former), ("csr", csr), ("bincount", former), ("csr", csr)):
        t0 = time.process_time()
        for _ in range(repeats):
            fn()
        out[name] = min(out.get(name, np.inf), 1e3 * (time.process_time() - t0) / repeats)
    return out


def one_size(S: int, new: bool) -> dict:
    import scipy.sparse.linalg  # noqa: F401  (imported before timing: start-up is bench_startup.py's business)

    from verify.estimators import get_estimator
    from verify.exact import gradient
    from verify.io import Limits, limits_scope
    from verify.mc import FULL_MOMENTS_MAX_D, _rows, run_mc
    from verify.sampler import iter_episode_chunks
    from verify.stats import SampleMoments
    from verify.mdp import TabularMDP
    from verify.policy import TabularSoftmax
    from verify.problem import Problem

    sys.path.insert(0, str(HERE))
    from scale_models import gridworld_rows

    trans, rew, terminal, initial, S = gridworld_rows(S)
    rows = {"transitions": {"sparse": trans}, "rewards": {"sparse": rew}}     # dropped once the model is built
    results: dict = {"S": S, "nnz": int(len(trans))}
    del trans, rew
    # The former revision's budget refuses S = 10^6 (its DP-table estimate): it runs under a limit that lets it.
    with limits_scope(Limits(max_memory=DEFAULT_BUDGET if new else 2**40)):
        def construct():
            m = TabularMDP(initial=initial, **rows, terminal=terminal, gamma=1.0, horizon=200, states=S, actions=4,
                           name=f"gridworld{S}")
            m.successors.pair, m.expected_reward    # cached parts of the model, built here in every tree
            return m

        mdp = stage(construct, results, "construct")
        rows.clear()
        policy = TabularSoftmax(0.3 * np.random.default_rng(1).normal(size=(S, 4)))
        problem = Problem(mdp, policy)
        if new:
            from verify.exact import gradient_bytes
            from verify.mc import run_bytes
            from verify.model.problem import model_bytes
            results["construct"]["estimate_mb"] = model_bytes(S, 4, results["nnz"], dense=False) / 2**20
            results["gradient_estimate_mb"] = gradient_bytes(mdp) / 2**20
            results["mc_estimate_mb"] = run_bytes(problem, EPISODES, ["reward_to_go"]) / 2**20
        if new:
            results["kernel_ms"] = kernel_step_ms(mdp, policy)
        _cold(mdp)
        stage(lambda: gradient(mdp, policy), results, "gradient")
        _cold(mdp)
        res = stage(lambda: run_mc(problem, "reward_to_go", episodes=EPISODES, seed=0), results, "mc")
        if res is not None:
            results["verdict"] = res.verdict
            results["mean"] = res.test.mean.ravel()[:: max(1, res.test.mean.size // 997)].tolist()
        for name in ("gradient", "mc"):
            if new and f"{name}_estimate_mb" in results and "peak_mb" in results.get(name, {}):
                results[name]["estimate_mb"] = results.pop(f"{name}_estimate_mb")
        # The work mc cannot avoid: sampling the episodes and the estimator's visited rows and moments.
        batches = stage(lambda: list(iter_episode_chunks(mdp, policy, EPISODES, np.random.default_rng(0))),
                        results, "sample")
        if batches is not None:
            est = get_estimator("reward_to_go")
            by_rows = S * 4 > FULL_MOMENTS_MAX_D
            stage(lambda: [_rows(est, b, policy).moments(b.n) if by_rows else SampleMoments.of(est.per_episode(b))
                           for b in batches], results, "estimate")
            del batches
        if S <= 2_000:       # the former dense storage, same MDP: the in-run baseline of the sparse model
            dense_P, dense_r = mdp.transitions.copy(), mdp.rewards.copy()
            stage(lambda: TabularMDP(initial=initial, transitions=dense_P, rewards=dense_r, terminal=terminal,
                                     gamma=1.0, horizon=200), results, "construct (dense input)")
            stage(lambda: gradient(mdp, policy, sparse=False), results, "gradient (dense operator)")
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def _bounded_allocator() -> None:
    """This tree's allocator settings of the bounded commands, applied to this (child) process (numpy's huge pages
    through the environment its parent set); the module is loaded from its file, so that a ``--compare`` child
    running an older ``verify`` gets the same settings."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_pgverify_startup", ROOT / "verify" / "_startup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.reuse_memory(), "glibc's mallopt refused the settings"
    assert not module.numpy_multiarray(np)._get_madvise_hugepage(), "numpy was imported before the environment was set"


def _run(S: int, tree: Path | None, allocator: str = "default") -> dict | None:
    env = dict(os.environ)
    env.pop("NUMPY_MADVISE_HUGEPAGE", None)
    if allocator == "bounded":
        env["NUMPY_MADVISE_HUGEPAGE"] = "0"          # read when numpy is imported, before the child's first line
    if tree is not None:
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--one", str(S), "--allocator", allocator] + ([] if tree is None else ["--old"])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(tree or ROOT))
    if proc.returncode:
        print(f"S = {S} ({'this tree' if tree is None else 'REV'}): the child failed:\n{proc.stderr[-2000:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cell(x: dict) -> str:
    if "cpu_s" not in x:
        return f"{'n/a':>26s}"
    est = x.get("estimate_mb")
    tail = f" {est:6.0f} {est / max(x['peak_mb'], 1e-9):5.2f}" if est is not None else f" {'':6s} {'':5s}"
    return f"{x['cpu_s']:6.2f} {x['peak_mb']:6.0f}" + tail


def report(rows: list[tuple[str, dict]]) -> None:
    print(f"slippery gridworld, A = 4, H = 200, reward_to_go, {EPISODES} episodes; per stage: CPU s, peak RSS "
          "increase MB, the budget's estimate MB, estimate / peak; allocator: "
          + ("the defaults (rows '/bnd': the bounded commands' settings)"
             if any(t.endswith("/bnd") for t, _ in rows) else rows[0][1]["allocator"]))
    names = ["construct", "gradient", "mc"]
    print(f"{'tree':9s} {'S':>8s} {'nnz':>9s} " + " ".join(f"{n:>26s}" for n in names))
    for tree, r in rows:
        print(f"{tree:9s} {r['S']:8d} {r['nnz']:9d} " + " ".join(_cell(r.get(n, {})) for n in names))
        for n in names:
            if "error" in r.get(n, {}):
                print(f"          {n}: not run: {r[n]['error']}")
        s_e = sum(r.get(n, {}).get("cpu_s", float("nan")) for n in ("sample", "estimate"))
        print(f"          sample {r.get('sample', {}).get('cpu_s', float('nan')):.2f} s + estimate "
              f"{r.get('estimate', {}).get('cpu_s', float('nan')):.2f} s: mc / (sample + estimate) "
              f"{r.get('mc', {}).get('cpu_s', float('nan')) / s_e:.2f}x; peak RSS of the process "
              f"{r['peak_rss_mb']:.0f} MB")
        for n, base in (("construct (dense input)", "construct"), ("gradient (dense operator)", "gradient")):
            if "cpu_s" in r.get(n, {}):
                print(f"          {n}: {r[n]['cpu_s']:.3f} s vs sparse {r[base]['cpu_s']:.3f} s: sparse "
                      f"{r[n]['cpu_s'] / max(r[base]['cpu_s'], 1e-9):.1f}x faster")
    for tree, r in rows:
        if "kernel_ms" in r:
            k = r["kernel_ms"]
            label = "" if tree == "this" else f" ({tree})"
            print(f"S = {r['S']}{label}: one backward step of the value tables: former bincount kernel "
                  f"{k['bincount']:.1f} ms, CSR kernel {k['csr']:.1f} ms: {k['bincount'] / k['csr']:.1f}x")
    by = {}
    for tree, r in rows:
        by.setdefault(r["S"], {})[tree] = r
    for S, trees in by.items():
        new, old = trees.get("this"), trees.get("REV")
        if new and old:
            parts = []
            for n in ("gradient", "mc"):
                a, b = new.get(n, {}), old.get(n, {})
                if "cpu_s" in a and "cpu_s" in b:
                    parts.append(f"{n} {b['cpu_s'] / a['cpu_s']:.1f}x faster, peak {b['peak_mb'] / a['peak_mb']:.1f}x "
                                 "smaller")
            same = "mean" in new and "mean" in old and np.allclose(new["mean"], old["mean"], rtol=1e-9, atol=1e-12)
            print(f"S = {S}: this tree vs REV: " + "; ".join(parts)
                  + f"; run_mc's estimates {'agree' if same else 'DIFFER'} (1000 components, rtol 1e-9)")
        bnd = trees.get("this/bnd")
        if new and bnd:
            print(f"S = {S}: the bounded commands' allocator settings / the defaults (this tree), CPU: " + "; ".join(
                f"{n} {bnd[n]['cpu_s'] / new[n]['cpu_s']:.2f}x ({new[n]['cpu_s']:.2f} -> {bnd[n]['cpu_s']:.2f} s, "
                f"peak {new[n]['peak_mb']:.0f} -> {bnd[n]['peak_mb']:.0f} MB)"
                for n in ("construct", "gradient", "mc", "estimate")
                if "cpu_s" in new.get(n, {}) and "cpu_s" in bnd.get(n, {}))
                + f"; process peak {new['peak_rss_mb']:.0f} -> {bnd['peak_rss_mb']:.0f} MB")
        goals = GOALS.get(10 ** round(np.log10(S)))
        if new and goals:
            print(f"goals at S = {S}: " + ", ".join(
                f"{n} {new[n]['cpu_s']:.1f} s (<= {g:g} s: {'met' if new[n]['cpu_s'] <= g else 'NOT met'})"
                for n, g in goals.items() if "cpu_s" in new.get(n, {}))
                + "; " + _budget_line(new, list(goals)))


def _budget_line(result: dict, stages: list[str]) -> str:
    """Whether the default budget let the stages run (its check is on the estimates, before any allocation) and
    how the measured peaks compare with it: an estimate within 20 % of its peak still lets a peak pass the line."""
    if not all("cpu_s" in result.get(n, {}) for n in stages):
        return f"the default {DEFAULT_BUDGET / 2**30:g} GiB budget: NO (refused)"
    budget_mb = DEFAULT_BUDGET / 2**20
    over = [f"{n} {result[n]['peak_mb'] - budget_mb:.0f} MB above it" for n in stages
            if result[n]["peak_mb"] > budget_mb]
    return (f"the default {DEFAULT_BUDGET / 2**30:g} GiB budget allowed it (estimates "
            + ", ".join(f"{n} {result[n].get('estimate_mb', float('nan')):.0f}" for n in stages)
            + " MB); measured peaks " + ", ".join(f"{n} {result[n]['peak_mb']:.0f}" for n in stages) + " MB"
            + (f" ({'; '.join(over)})" if over else " (within it)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--compare", metavar="REV", help="also measure the verify package of this git revision")
    ap.add_argument("--allocator", choices=("default", "bounded", "both"), default="default",
                    help="glibc's and numpy's defaults (default: as the commands on a user's problem run), the "
                         "bounded commands' settings, or both one after the other")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)      # child process: one size, JSON on stdout
    ap.add_argument("--old", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        if args.allocator == "bounded":
            _bounded_allocator()
        print(json.dumps({**one_size(args.one, new=not args.old), "allocator": args.allocator}))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old = None
        if args.compare:
            old = Path(tmp)
            archive = subprocess.run(["git", "archive", args.compare, "verify"], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        allocators = ("default", "bounded") if args.allocator == "both" else (args.allocator,)
        for S in args.sizes:          # one heavy process at a time
            for tree, path in (("this", None), ("REV", old)):
                if tree == "REV" and old is None:
                    continue
                for allocator in allocators:
                    r = _run(S, path, allocator)
                    if r is not None:
                        rows.append((tree if allocator == allocators[0] else tree + "/bnd", r))
    if rows:
        report(rows)


if __name__ == "__main__":
    main()
