"""Monte Carlo runs: sample once, evaluate estimators, test each against the exact gradient; ``check`` verdicts.

``run_estimators`` streams the episodes chunk by chunk (memory stays bounded for any N), merges each estimator's
per-episode moments and runs ``stats.consistency_test`` against exact grad J. When the trajectories can be
enumerated (finite horizon, at most ``ENUMERATION_LIMIT``) it also knows every estimator's exact mean and
covariance, and by default (``covariance="auto"``) tests with the exact covariance (chi^2); otherwise with the
sample variances (the max-|z| test, see ``verify.stats``). All estimators of one run see the same episodes, so a row of ``pgverify check``
is reproduced exactly by ``pgverify mc FILE --estimator NAME`` with the same episodes, seed and alpha.

Power: the stated effect size is EFFECT_SIZE = 0.1 (bias / per-episode std, Mahalanobis). At the default
DEFAULT_EPISODES = 20000 and alpha = 1e-3 a bias of that size is rejected with probability >= 0.999 for up to
64 parameters (``stats.detectable_effect``); ``check`` expects every pitfall whose exact bias reaches the
detectable size of the run to be rejected, and does not count pitfalls without exact bias as misses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.errors import UsageError
from verify.estimators import ESTIMATORS, Estimator, get_estimator
from verify.exact import finite_difference_gradient, gradient
from verify.moments import ExactMoments, exact_moments, magnitude, try_enumerate
from verify.problem import Problem
from verify.sampler import iter_episode_chunks
from verify.stats import (ConsistencyResult, SampleMoments, component_effect_size, consistency_test, detectable_effect,
                          effect_size)

__all__ = ["COVARIANCES", "CheckResult", "CheckRow", "DEFAULT_ALPHA", "DEFAULT_EPISODES", "DETECT_POWER",
           "GRADIENT_TOL", "GradientCheck",
           "EFFECT_SIZE", "ENUMERATION_LIMIT", "McResult", "component_name", "exact_cross_check", "format_mc", "render_check",
           "reproduce_command", "run_check", "run_estimators", "run_mc"]

DEFAULT_EPISODES = 20_000
DEFAULT_ALPHA = 1e-3
EFFECT_SIZE = 0.1
DETECT_POWER = 0.999
ENUMERATION_LIMIT = 200_000
COVARIANCES = ("auto", "exact", "sample")
GRADIENT_TOL = 1e-8   # enumeration/DP/solve agree to ~1e-12; central differences limit this to ~1e-9
TEST_NAMES = {"chi2": "chi^2 (exact covariance)", "maxz": "max |z| (Bonferroni, sample variances)",
              "hotelling": "Hotelling T^2"}


@dataclass(frozen=True)
class GradientCheck:
    """Exact gradient of one example by every applicable method, and their largest disagreement."""

    example: str
    J: float
    methods: tuple[str, ...]
    max_abs_diff: float
    tol: float

    @property
    def passed(self) -> bool:
        return bool(self.max_abs_diff <= self.tol)

    def to_json(self) -> dict:
        return {"example": self.example, "J": self.J, "methods": list(self.methods),
                "max_abs_diff": self.max_abs_diff, "tol": self.tol, "passed": self.passed}


@dataclass(frozen=True, eq=False)
class McResult:
    """One estimator's Monte Carlo run on one problem.

    Attributes:
      problem: the MDP's name; estimator: the catalog entry; episodes, seed, alpha: the run's settings.
      test: the consistency test against exact grad J.
      moments: exact moments of the estimator, or None when the problem cannot be enumerated.
      detectable: the effect size this run rejects with probability DETECT_POWER.
      component: readable name of ``test.worst``.
    """

    problem: str
    estimator: Estimator
    episodes: int
    seed: int
    alpha: float
    test: ConsistencyResult
    moments: ExactMoments | None
    detectable: float
    component: str

    @property
    def verdict(self) -> str:
        return self.test.verdict

    @property
    def effect(self) -> float | None:
        """Exact effect size |bias| / std (Mahalanobis), or None without exact moments."""
        if self.moments is None:
            return None
        size = component_effect_size if self.test.test == "maxz" else effect_size
        return size(self.moments.bias, self.moments.cov, scale=self.moments.scale)

    def to_json(self) -> dict:
        t, m, eff = self.test, self.moments, self.effect
        w = t.worst
        return {"problem": self.problem, "estimator": self.estimator.name, "unbiased": self.estimator.unbiased,
                "episodes": self.episodes, "seed": self.seed, "alpha": self.alpha, "test": t.test,
                "statistic": None if np.isinf(t.statistic) else t.statistic, "dof": t.dof, "p_value": t.p_value,
                "verdict": t.verdict, "mean": t.mean.tolist(), "stderr": t.stderr.tolist(),
                "exact": t.exact.tolist(), "exact_mismatch": t.exact_mismatch,
                "worst": {"index": list(w), "name": self.component, "mean": float(t.mean[w]),
                          "exact": float(t.exact[w]), "stderr": float(t.stderr[w])},
                "exact_bias": None if m is None else m.bias.tolist(),
                "exact_std": None if m is None else m.std.tolist(),
                "effect_size": None if eff is None or np.isinf(eff) else eff,
                "effect_size_infinite": bool(eff is not None and np.isinf(eff)),
                "detectable_effect": self.detectable}


def component_name(problem: Problem, index: tuple[int, ...]) -> str:
    """theta[s, a] with the MDP's state and action names (tabular), or theta[k] (linear).

    >>> from verify.builtin import builtin_examples
    >>> component_name(builtin_examples()["chain"], (1, 1))
    "theta[1, 1] (state 's1', action 'right')"
    """
    label = f"theta[{', '.join(str(i) for i in index)}]"
    if problem.policy.kind == "tabular_softmax" and len(index) == 2:
        s, a = index
        label += f" (state {problem.mdp.states[s]!r}, action {problem.mdp.actions[a]!r})"
    return label


def _check_settings(episodes, alpha, covariance) -> None:
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 2:
        raise UsageError(f"the number of episodes must be an integer of at least 2, got {episodes!r}")
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    if covariance not in COVARIANCES:
        raise UsageError(f"unknown covariance {covariance!r}; choose one of {', '.join(COVARIANCES)}")


def run_estimators(problem: Problem, estimators, *, episodes: int = DEFAULT_EPISODES, seed: int = 0,
                   alpha: float = DEFAULT_ALPHA, covariance: str = "auto", chunk: int | None = None,
                   max_steps: int | None = None, sampler=None) -> list[McResult]:
    """Sample ``episodes`` episodes once and test each estimator's mean against exact grad J.

    Args:
      problem: MDP and policy.
      estimators: catalog entries (or names).
      episodes, seed: sample size and the seed of ``numpy.random.default_rng``.
      alpha: level of each test.
      covariance: "exact" (chi^2 with the enumerated covariance), "sample" (max-|z|) or "auto" (exact when
        the trajectories can be enumerated).
      chunk, max_steps: passed to ``sampler.iter_episode_chunks``.
      sampler: another episode source, ``sampler(mdp, policy, n, rng) -> iterable of Episodes batches`` (e.g.
        ``verify.gym.gymnasium_sampler``: gymnasium's own env.step loop); default ``iter_episode_chunks``.

    Returns:
      One McResult per estimator, in the given order.

    Raises:
      UsageError: bad settings, unknown estimator, or covariance "exact" on a problem that cannot be enumerated.
    """
    _check_settings(episodes, alpha, covariance)
    estimators = [get_estimator(e) if isinstance(e, str) else e for e in estimators]
    mdp, policy = problem.mdp, problem.policy
    grad = gradient(mdp, policy).grad
    enum = None if covariance == "sample" else try_enumerate(mdp, policy, max_trajectories=ENUMERATION_LIMIT)
    if covariance == "exact" and enum is None:
        raise UsageError("--covariance exact needs trajectory enumeration (a finite horizon and at most "
                         f"{ENUMERATION_LIMIT} trajectories); use --covariance sample")
    moments = {} if enum is None else {
        e.name: exact_moments(e, mdp, policy, enumeration=enum, grad=grad) for e in estimators}
    acc: dict[str, SampleMoments] = {}
    rng = np.random.default_rng(seed)
    batches = (iter_episode_chunks(mdp, policy, episodes, rng, chunk=chunk, max_steps=max_steps) if sampler is None
               else sampler(mdp, policy, episodes, rng))
    for batch in batches:
        for e in estimators:
            m = SampleMoments.of(e.per_episode(batch))
            acc[e.name] = m if e.name not in acc else acc[e.name].merge(m)
    scale = magnitude(mdp, policy)
    results = []
    for e in estimators:
        mom = moments.get(e.name)
        test = consistency_test(acc[e.name], grad, alpha=alpha, cov=None if mom is None else mom.cov, scale=scale)
        detect = detectable_effect(episodes, max(test.dof, 1), alpha, DETECT_POWER, test=test.test)
        results.append(McResult(mdp.name, e, episodes, seed, alpha, test, mom, detect,
                                component_name(problem, test.worst)))
    return results


def run_mc(problem: Problem, estimator: str | Estimator, **settings) -> McResult:
    """``run_estimators`` for one estimator (same settings)."""
    return run_estimators(problem, [estimator], **settings)[0]


def reproduce_command(problem_args: str, result: McResult, covariance: str = "auto") -> str:
    """The ``pgverify mc`` command line that reproduces ``result`` exactly.

    Args:
      problem_args: how the problem was named on the command line, shell-quoted (``FILE`` or ``--gym ...``).
    """
    cmd = (f"pgverify mc {problem_args} --estimator {result.estimator.name} --episodes {result.episodes} "
           f"--seed {result.seed} --alpha {result.alpha!r}")
    return cmd + ("" if covariance == "auto" else f" --covariance {covariance}")


def format_mc(result: McResult, command: str) -> str:
    """Human-readable report of one run; on failure it names the component, the numbers and the replay command."""
    t, e = result.test, result.estimator
    w = t.worst
    stat = ("a zero-variance direction differs" if t.exact_mismatch else
            f"{TEST_NAMES[t.test]} = {t.statistic:.4g} on {t.dof} {'components' if t.test == 'maxz' else 'dof'}")
    lines = [f"{result.problem}: estimator {e.name} ({'unbiased' if e.unbiased else 'biased pitfall'}), "
             f"{result.episodes} episodes, seed {result.seed}",
             f"{stat}, p = {t.p_value:.3g} {'<=' if t.p_value <= t.alpha else '>'} alpha = {t.alpha:g}: "
             f"{'CONSISTENT with' if t.consistent else 'INCONSISTENT with'} the exact gradient"]
    what = "differs most" if not t.consistent else "largest deviation"
    lines.append(f"{what}: {result.component}: sample mean {t.mean[w]:.6g}, exact {t.exact[w]:.6g}, "
                 f"standard error {t.stderr[w]:.3g}" + ("" if t.stderr[w] == 0 else f" (z = {t.z[w]:+.2f})"))
    if result.moments is not None:
        eff = result.effect
        lines.append(f"exact bias of this estimator: max |bias| = {np.abs(result.moments.bias).max():.3g}, "
                     f"effect size {'inf' if np.isinf(eff) else f'{eff:.3g}'} "
                     f"(detectable here: {result.detectable:.3g})")
    if not t.consistent:
        lines.append(f"reproduce: {command}")
    return "\n".join(lines)


# --- check: every estimator on one problem ------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class CheckRow:
    """One estimator in ``check``: its run, what was expected, and whether the outcome is a pass."""

    mc: McResult
    expected: str
    outcome: str
    passed: bool


def _judge(r: McResult) -> CheckRow:
    caught = not r.test.consistent
    if r.estimator.unbiased:
        return CheckRow(r, "consistent", "consistent" if not caught else "FALSE ALARM", not caught)
    if r.moments is None:
        return CheckRow(r, "bias unknown", "caught" if caught else "not caught", True)
    if not r.moments.biased:
        return CheckRow(r, "no bias here", "consistent" if not caught else "FALSE ALARM", not caught)
    if r.effect >= r.detectable:
        return CheckRow(r, "caught", "caught" if caught else "MISSED", caught)
    return CheckRow(r, "below limit", "caught" if caught else "not caught", True)


@dataclass(frozen=True, eq=False)
class CheckResult:
    """``pgverify check``: the exact-gradient cross-check and every estimator on one problem."""

    problem: str
    gradients: GradientCheck
    rows: list[CheckRow]

    @property
    def passed(self) -> bool:
        return bool(self.gradients.passed and all(r.passed for r in self.rows))

    def to_json(self) -> dict:
        return {"problem": self.problem, "passed": self.passed, "gradients": self.gradients.to_json(),
                "estimators": [{**r.mc.to_json(), "expected": r.expected, "outcome": r.outcome, "passed": r.passed}
                               for r in self.rows]}


def exact_cross_check(problem: Problem):
    """grad J by DP (finite horizon) or a linear solve, by enumeration when feasible, and by finite differences.

    Enumerates only up to ENUMERATION_LIMIT trajectories, so it also serves problems such as FrozenLake with
    H = 100.
    """
    mdp, policy = problem.mdp, problem.policy
    methods = ["dp"] if mdp.horizon is not None else ["solve"]
    if try_enumerate(mdp, policy, max_trajectories=ENUMERATION_LIMIT) is not None:
        methods.insert(0, "enumerate")
    results = [gradient(mdp, policy, m) for m in methods]
    grads = [r.grad for r in results] + [finite_difference_gradient(mdp, policy)]
    diff = max(float(np.abs(g - grads[0]).max()) for g in grads)
    return GradientCheck(mdp.name, results[0].J, (*methods, "finite differences"), diff, GRADIENT_TOL)


def run_check(problem: Problem, estimators=ESTIMATORS, **settings) -> CheckResult:
    """Exact gradients by every method vs finite differences, then ``estimators`` (the catalog) on one sample."""
    return CheckResult(problem.mdp.name, exact_cross_check(problem),
                       [_judge(r) for r in run_estimators(problem, estimators, **settings)])


def render_check(check: CheckResult, problem_args: str, covariance: str = "auto", color: bool = True) -> None:
    """Print the check as rich tables, with replay commands for failures."""
    from rich.console import Console
    from rich.table import Table

    console = Console(no_color=not color, highlight=False)
    console.width = max(console.width, 110)        # pipes get 80 columns, too few for the table
    g = check.gradients
    console.print(f"{check.problem}: J(theta) = {g.J:.10g}; {', '.join(g.methods)} agree within "
                  f"{g.max_abs_diff:.1e} (tol {g.tol:.0e}) {'✓' if g.passed else '✗'}")
    first = check.rows[0].mc
    table = Table(title=f"Estimators vs exact grad J ({first.episodes} episodes, seed {first.seed}, "
                        f"alpha {first.alpha:g}, {first.test.test} test)")
    for col in ("estimator", "unbiased", "max|bias|", "effect", "p-value", "expected", "outcome"):
        table.add_column(col, no_wrap=True)
    for row in check.rows:
        r = row.mc
        eff = r.effect
        table.add_row(r.estimator.name, "yes" if r.estimator.unbiased else "no",
                      "?" if r.moments is None else f"{np.abs(r.moments.bias).max():.2e}",
                      "?" if eff is None else ("inf" if np.isinf(eff) else f"{eff:.3f}"),
                      f"{r.test.p_value:.3g}", row.expected,
                      f"✓ {row.outcome}" if row.passed else f"✗ {row.outcome}")
    console.print(table)
    console.print(f"max|bias|, effect: exact bias and bias / per-episode std (Mahalanobis), by enumeration (? = not "
                  f"enumerable); effects from {max(r.mc.detectable for r in check.rows):.3g} on are caught with "
                  f"probability {DETECT_POWER} (\"below limit\": may go either way)")
    for row in check.rows:
        if not row.passed:
            console.print(format_mc(row.mc, reproduce_command(problem_args, row.mc, covariance)))
    n_ok = sum(r.passed for r in check.rows) + g.passed
    console.print(f"{n_ok}/{len(check.rows) + 1} checks passed")
