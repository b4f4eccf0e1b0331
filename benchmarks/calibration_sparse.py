"""False alarms of the sampled verdicts on large, sparse problems; the rare-state bias.

Run by hand::

    OPENBLAS_NUM_THREADS=1 python benchmarks/calibration_sparse.py --problem gridworld --seeds 150
    OPENBLAS_NUM_THREADS=1 python benchmarks/calibration_sparse.py --problem taxi --seeds 150
    OPENBLAS_NUM_THREADS=1 python benchmarks/calibration_sparse.py --problem frozenlake --seeds 150
    OPENBLAS_NUM_THREADS=1 python benchmarks/calibration_sparse.py --rare --seeds 20

Calibration: for each seed one sample of ``--episodes`` episodes (default 20 000) is drawn and every unbiased catalog
estimator that is a per-episode function (total_return, reward_to_go, baseline_constant, baseline_value, q_value,
advantage, gae) is judged on it by ``verify.checks.mc.run_estimators`` at alpha = 1e-3, nothing enumerated. A false alarm
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


def run_calibration(name: str, seeds: int, episodes: int) -> None:
    prob = problem(name)
    ests = [e for e in ESTIMATORS if e.unbiased and not e.batch_dependent]
    verdicts = {e.name: [] for e in ests}
    t0 = time.perf_counter()
    for seed in range(seeds):
        for r in run_estimators(prob, ests, episodes=episodes, seed=seed, alpha=ALPHA):
            verdicts[r.estimator.name].append(r.verdict)
            if r.verdict == "inconsistent":
                print(f"  seed {seed}: false alarm {r.estimator.name} ({r.decided_by}, p = {r.sampled.p_value:.2g}, "
                      f"worst {r.component})", flush=True)
        if (seed + 1) % 10 == 0:
            fa = sum(v.count("inconsistent") for v in verdicts.values())
            print(f"  {seed + 1} seeds: {fa} false alarms, {time.perf_counter() - t0:.0f} s", flush=True)
    total = sum(len(v) for v in verdicts.values())
    fa = sum(v.count("inconsistent") for v in verdicts.values())
    cal = calibration(fa, total, ALPHA, confidence=0.95)
    print(f"{name}: {seeds} seeds x {episodes} episodes, alpha = {ALPHA:g}: {fa} false alarms in {total} verdicts "
          f"(rate {cal.rate:.2g}, 95 % interval {cal.interval[0]:.2g}-{cal.interval[1]:.2g}; alpha inside: "
          f"{cal.ok}); {time.perf_counter() - t0:.0f} s")
    for e, v in verdicts.items():
        print(f"  {e}: " + ", ".join(f"{k} {v.count(k)}" for k in ("consistent", "undecided", "inconsistent")))


def run_rare(seeds: int, episodes: int) -> None:
    from verify.numerics.exact import gradient

    prob = gridworld_problem()
    state, freq = rare_state(prob, episodes)
    size = float(np.abs(gradient(prob.mdp, prob.policy).grad).max())     # the exact bias there: max |grad J|
    est = as_estimator(biased_at(state, size / freq), name="rtg_plus_rare_bias")
    counts = {"consistent": 0, "undecided": 0, "inconsistent": 0}
    t0 = time.perf_counter()
    for seed in range(seeds):
        r = run_estimators(prob, [est], episodes=episodes, seed=seed, alpha=ALPHA)[0]
        counts[r.verdict] += 1
        named = any(c.index[0] == state for c in r.rare)
        print(f"  seed {seed}: {r.verdict}; rare state named: {named}", flush=True)
    print(f"rare-state bias (state {state}, visited in {freq * episodes:.0f} of {episodes} pilot episodes, exact "
          f"bias {size:.3g} = max |grad J| on each of its components): {counts} over {seeds} seeds; "
          f"{time.perf_counter() - t0:.0f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=150)
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--problem", choices=("gridworld", "taxi", "frozenlake"), default="frozenlake")
    parser.add_argument("--rare", action="store_true", help="the rare-state bias instead of the calibration")
    args = parser.parse_args(argv)
    if args.rare:
        run_rare(args.seeds, args.episodes)
    else:
        run_calibration(args.problem, args.seeds, args.episodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
