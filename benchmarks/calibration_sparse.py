"""False alarms of the sampled verdicts on large, sparse problems; the rare-state bias.

Run by hand::

    OPENBLAS_NUM_THREADS=1 python benchmarks/calibration_sparse.py --problem gridworld --seeds 150
    OPENBLAS_NUM_THREADS=1 python benchmarks/calibration_sparse.py --problem taxi --seeds 150
    OPENBLAS_NUM_THREADS=1 python benchmarks/calibration_sparse.py --problem frozenlake --seeds 150
    OPENBLAS_NUM_THREADS=1 python benchmarks/calibration_sparse.py --rare --seeds 20

Each may take hours on a loaded machine: ``--out FILE`` appends one JSON line per seed (verdicts; for every alarm the
test, component, z, non-zero values, exact and sample mean, standard error, p) and skips the seeds already in FILE,
so a killed run resumes; ``--first-seed K`` runs a shard K..SEEDS-1; ``--summary`` prints the counts of FILE.

Calibration: for each seed one sample of ``--episodes`` episodes (default 20 000) is drawn and every unbiased catalog
estimator that is a per-episode function (total_return, reward_to_go, baseline_constant, baseline_value, q_value,
advantage, gae; not ppo_surrogate, whose values at theta = theta_old are advantage's bit for bit) is judged on it by ``verify.checks.mc.run_estimators`` at alpha = 1e-3, nothing enumerated. A false alarm
is a verdict "inconsistent" for one of them. Printed per problem: the count, the rate and its exact 95 % interval
(``stats.calibration``), and how the verdicts split (consistent / undecided).

- ``gridworld``: the 10^4-state slippery gridworld of ``benchmarks/scale_models.py`` (H = 200, gamma = 1,
  theta = 0.3 N(0, 1) with seed 1, as ``bench_scale.py`` builds it);
- ``taxi``: ``--gym Taxi-v4`` (uniform policy, horizon null);
- ``frozenlake``: ``--gym FrozenLake-v1 --gamma 0.99`` (4x4, slippery, horizon 100).

``--rare``: on the gridworld, reward-to-go plus a bias of max |grad J| (in gradient units) on the components of one
state visited in a few dozen of 20 000 episodes; counts the seeds at which the verdict is "consistent" (the issue:
it was in 20 of 20).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from verify.checks.estimators import ESTIMATORS, get_estimator  # noqa: E402
from verify.checks.gradcheck import as_estimator  # noqa: E402
from verify.checks.mc import run_estimators  # noqa: E402
from verify.model.policy import TabularSoftmax  # noqa: E402
from verify.model.problem import Problem  # noqa: E402
from verify.checks.stats import calibration  # noqa: E402

ALPHA = 1e-3


def gridworld_problem() -> Problem:
    from scale_models import gridworld

    mdp = gridworld(10_000)
    theta = 0.3 * np.random.default_rng(1).standard_normal((mdp.n_states, 4))
    return Problem(mdp, TabularSoftmax(theta))


def problem(name: str) -> Problem:
    if name == "gridworld":
        return gridworld_problem()
    from verify.frameworks.gym import gym_problem

    return gym_problem("Taxi-v4") if name == "taxi" else gym_problem("FrozenLake-v1", gamma=0.99)


def rare_state(problem: Problem, episodes: int, lo: int = 15, hi: int = 80, seed: int = 12345) -> tuple[int, float]:
    """(a non-terminal state visited in about lo..hi of ``episodes`` episodes, its visit frequency), from a pilot
    sample."""
    from verify.numerics.sampler import sample_episodes

    batch = sample_episodes(problem.mdp, problem.policy, episodes, np.random.default_rng(seed))
    visits = np.zeros(problem.mdp.n_states, dtype=int)
    for n in range(batch.n):
        visits[np.unique(batch.s_t[n, :batch.lengths[n]])] += 1
    ok = np.flatnonzero((visits >= lo) & (visits <= hi) & ~problem.mdp.terminal)
    state = int(ok[np.argmax(visits[ok])])
    return state, visits[state] / episodes


def biased_at(state: int, size: float):
    """reward-to-go plus ``size`` on theta[state, :] in every episode that visits ``state`` (a bias confined to a
    rare state: E[g] - grad J = size P(visit) there, and g - reward_to_go is non-zero only in those episodes).

    Used in tests/test_verdicts.py too."""
    rtg = get_estimator("reward_to_go").per_episode

    def rtg_plus_rare_bias(episodes):
        g = np.array(rtg(episodes))
        visits = np.any((episodes.s_t[:, :-1] == state) & episodes.mask, axis=1)
        g[visits, state, :] += size
        return g

    return rtg_plus_rare_bias


def calibrated_estimators():
    """The unbiased per-episode catalog estimators, but ppo_surrogate: at theta = theta_old its values are
    advantage's bit for bit (rho_t = 1), so its verdict would count one event twice."""
    return [e for e in ESTIMATORS if e.unbiased and not e.batch_dependent and e.name != "ppo_surrogate"]


def _diagnosis(t) -> dict:
    """What a rejecting test saw at its worst component: z, non-zero values, exact and sample means, skewness."""
    w = tuple(t.worst)
    out = {"component": list(w), "z": _num(t.z[w]), "exact": float(t.exact[w]), "mean": float(t.mean[w]),
           "stderr": float(t.stderr[w]), "p": float(t.p_value), "tested": int(t.dof)}
    if t.nonzero is not None:
        out["nonzero"] = int(t.nonzero[w])
    if t.tail is not None:
        out["tail_ratio"] = float(t.tail[w])
    return out


def _num(x) -> float | None:
    return float(x) if np.isfinite(x) else None


def _done_seeds(path: Path | None, name: str, episodes: int) -> dict[int, dict]:
    """Per-seed records already in ``path`` for this problem and size (the benchmark resumes where it stopped)."""
    done = {}
    if path is not None and path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:      # a line cut by a kill: that seed runs again
                continue
            if rec.get("problem") == name and rec.get("episodes") == episodes and rec.get("alpha") == ALPHA:
                done[rec["seed"]] = rec
    return done


def run_calibration(name: str, seeds: range, episodes: int, out: Path | None = None) -> None:
    prob = problem(name)
    ests = calibrated_estimators()
    records = _done_seeds(out, name, episodes)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for seed in seeds:
        if seed in records:
            continue
        s0 = time.process_time()
        rec = {"problem": name, "seed": seed, "episodes": episodes, "alpha": ALPHA, "verdicts": {}, "alarms": []}
        for r in run_estimators(prob, ests, episodes=episodes, seed=seed, alpha=ALPHA):
            rec["verdicts"][r.estimator.name] = r.verdict
            if r.verdict == "inconsistent":
                for t, which in ((r.test, "unpaired"), (r.paired, "paired")):
                    if t is not None and t.verdict == "inconsistent":
                        rec["alarms"].append({"estimator": r.estimator.name, "test": which, **_diagnosis(t)})
                        print(f"  seed {seed}: false alarm {r.estimator.name} ({which}): "
                              f"{rec['alarms'][-1]}", flush=True)
        rec["cpu_s"] = round(time.process_time() - s0, 2)
        records[seed] = rec
        if out is not None:
            with out.open("a") as f:       # one line per seed: a killed run loses at most the seed it was on
                f.write(json.dumps(rec) + "\n")
        ran = sum(1 for s in seeds if s in records)
        if ran % 10 == 0:
            fa = sum(len(records[s]["alarms"]) for s in seeds if s in records)
            print(f"  {ran} seeds: {fa} false alarms, {time.process_time() - cpu0:.0f} CPU-s", flush=True)
    summarise(name, [records[s] for s in seeds if s in records], episodes, time.perf_counter() - t0)


def summarise(name: str, recs: list[dict], episodes: int, wall: float = float("nan")) -> None:
    """The false-alarm count over the seeds' records, its exact 95 % interval, and how the verdicts split."""
    verdicts: dict[str, list[str]] = {}
    for rec in recs:
        for e, v in rec["verdicts"].items():
            verdicts.setdefault(e, []).append(v)
    total = sum(len(v) for v in verdicts.values())
    fa = sum(v.count("inconsistent") for v in verdicts.values())
    if not total:
        print(f"{name}: no seeds run")
        return
    cal = calibration(fa, total, ALPHA, confidence=0.95)
    cpu = sum(rec.get("cpu_s", 0.0) for rec in recs)
    print(f"{name}: {len(recs)} seeds x {episodes} episodes, alpha = {ALPHA:g}: {fa} false alarms in {total} verdicts "
          f"(rate {cal.rate:.2g}, 95 % interval {cal.interval[0]:.2g}-{cal.interval[1]:.2g}; alpha inside: "
          f"{cal.ok}; one-sided exact p of >= {fa} alarms at rate alpha: {_upper_p(fa, total):.2g}); "
          f"{cpu:.0f} CPU-s" + (f", {wall:.0f} s wall" if np.isfinite(wall) else ""))
    for e, v in verdicts.items():
        print(f"  {e}: " + ", ".join(f"{k} {v.count(k)}" for k in ("consistent", "undecided", "inconsistent")))
    for rec in recs:
        for a in rec["alarms"]:
            print(f"  seed {rec['seed']}: {a}")


def _upper_p(k: int, n: int) -> float:
    """P(Binomial(n, ALPHA) >= k): the test of "false-alarm rate <= alpha"."""
    from scipy import stats

    return float(stats.binom.sf(k - 1, n, ALPHA))


def run_rare(seeds: range, episodes: int, out: Path | None = None) -> None:
    from verify.numerics.exact import gradient

    prob = gridworld_problem()
    state, freq = rare_state(prob, episodes)
    size = float(np.abs(gradient(prob.mdp, prob.policy).grad).max())     # the exact bias there: max |grad J|
    est = as_estimator(biased_at(state, size / freq), name="rtg_plus_rare_bias")
    records = _done_seeds(out, "rare", episodes)
    t0 = time.perf_counter()
    for seed in seeds:
        if seed in records:
            continue
        s0 = time.process_time()
        r = run_estimators(prob, [est], episodes=episodes, seed=seed, alpha=ALPHA)[0]
        named = any(c.index[0] == state for c in r.rare)
        records[seed] = rec = {"problem": "rare", "seed": seed, "episodes": episodes, "alpha": ALPHA,
                               "verdict": r.verdict, "named": named, "cpu_s": round(time.process_time() - s0, 2)}
        if out is not None:
            with out.open("a") as f:
                f.write(json.dumps(rec) + "\n")
        print(f"  seed {seed}: {r.verdict}; rare state named: {named}", flush=True)
    recs = [records[s] for s in seeds if s in records]
    counts = {v: sum(r["verdict"] == v for r in recs) for v in ("consistent", "undecided", "inconsistent")}
    named = sum(r["named"] for r in recs if r["verdict"] == "undecided")
    print(f"rare-state bias (state {state}, visited in {freq * episodes:.0f} of {episodes} pilot episodes, exact "
          f"bias {size:.3g} = max |grad J| on each of its components): {counts} over {len(recs)} seeds (the state "
          f"named as undecided there in {named} of the undecided); {time.perf_counter() - t0:.0f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=150, help="seeds 0 .. SEEDS - 1 (default 150)")
    parser.add_argument("--first-seed", type=int, default=0, help="start at this seed (a shard: FIRST .. SEEDS - 1)")
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--problem", choices=("gridworld", "taxi", "frozenlake"), default="frozenlake")
    parser.add_argument("--rare", action="store_true", help="the rare-state bias instead of the calibration")
    parser.add_argument("--out", type=Path, default=None,
                        help="append one JSON line per seed here and skip the seeds already in it (resumable)")
    parser.add_argument("--summary", action="store_true", help="only summarise the seeds already in --out")
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.seeds)
    if args.rare:
        run_rare(seeds, args.episodes, args.out)
    elif args.summary:
        recs = _done_seeds(args.out, args.problem, args.episodes)
        summarise(args.problem, [recs[s] for s in seeds if s in recs], args.episodes)
    else:
        run_calibration(args.problem, seeds, args.episodes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
