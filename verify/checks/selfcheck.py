r"""The Monte Carlo path checked against itself: the false-alarm count of rows whose exact bias is zero.

Where the trajectories can be enumerated the verdict of a row is its exact bias, and its Monte Carlo test is shown
beside it. For a row whose exact bias is zero (an unbiased estimator, or a pitfall with no bias on this problem)
that test is a test of a true null at level alpha: it rejects with probability alpha, *if* the sampler draws
episodes from p(tau|theta) and the statistics are right. One "false alarm" is then honest; many are evidence that
the sampler or the statistics are broken (episodes capped a step early, terminal states ignored), and a verifier
whose verdicts stay "passed" then has a ✓ that could not fail.

``false_alarm_check`` counts them: with n distinct such tests (rows of one sample whose statistics are identical,
the same estimator under two names, count once) and k rejections,

    P(X >= k),  X ~ Binomial(n, alpha)      (the exact upper tail: ``scipy.stats.binom.sf(k - 1, n, alpha)``)

is the probability of a count at least this large with a correct Monte Carlo path, treating the distinct tests as
independent. The check fails when that tail is at most alpha, the run's own level: with the report's 28 tests at
alpha = 1e-3, one false alarm passes (P = 0.028) and two fail (P = 3.7e-4). The family-wise statement is
computed from the same law: P(X >= 1) = 1 - (1 - alpha)^n. Tests of one sample are not independent (the
estimators share its episodes); the Markov bound P(X >= k) <= n alpha / k holds whatever the dependence and is
reported too (``markov_bound``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FalseAlarmCheck", "false_alarm_check"]

SAME_RTOL = 1e-9     # two rows of one sample whose means and statistics agree this closely are one test


@dataclass(frozen=True)
class FalseAlarmCheck:
    """How many Monte Carlo tests of estimators with exact bias zero rejected, against Binomial(tests, alpha).

    Attributes:
      alpha: the level of each test (the run's) and of this check.
      tests: distinct tests of a true null (rows with exact bias zero; identical rows of one sample merged).
      rejections: how many of them rejected.
      rows: (example, estimator) of every row whose test rejected, in order.
      p_value: P(X >= rejections) for X ~ Binomial(tests, alpha); 1 when nothing rejected.
    """

    alpha: float
    tests: int
    rejections: int
    rows: tuple[tuple[str, str], ...]
    p_value: float

    undecided = False

    @property
    def passed(self) -> bool:
        """The count is plausible: its binomial tail exceeds alpha."""
        return self.rejections == 0 or self.p_value > self.alpha

    @property
    def family_wise(self) -> float:
        """P(at least one false alarm) = 1 - (1 - alpha)^tests."""
        return float(-np.expm1(self.tests * np.log1p(-self.alpha))) if self.tests else 0.0

    @property
    def expected(self) -> float:
        """E[X] = tests * alpha."""
        return self.tests * self.alpha

    @property
    def markov_bound(self) -> float:
        """P(X >= rejections) <= tests alpha / rejections, whatever the dependence between the tests."""
        return min(1.0, self.expected / self.rejections) if self.rejections else 1.0

    def summary(self) -> str:
        """One sentence computed from the count: what the count says about the Monte Carlo path."""
        law = (f"{self.rejections} of the {self.tests} Monte Carlo tests of estimators whose exact bias is zero "
               f"rejected at alpha = {self.alpha:g} (false alarms)")
        if not self.tests:
            return "no estimator with exact bias zero was tested: the false-alarm self-check has nothing to count"
        if self.passed:
            return (f"{law}; P(>= {self.rejections}) = {self.p_value:.2g} under Binomial({self.tests}, "
                    f"{self.alpha:g}), a plausible count; the family-wise false-alarm rate of these tests is "
                    f"1 - (1 - alpha)^{self.tests} = {self.family_wise:.2g}")
        names = ", ".join(f"{ex}/{est}" if ex else est for ex, est in self.rows)
        return (f"SELF-CHECK FAILED: {law}; with a correct sampler and correct statistics that count is "
                f"Binomial({self.tests}, {self.alpha:g}) (expected {self.expected:.2g}), and P(>= "
                f"{self.rejections}) = {self.p_value:.2g} <= alpha: the sampler or the statistics are broken, "
                f"whatever the rows' ✓ say. Rows: {names}")

    def to_json(self) -> dict:
        return {"alpha": self.alpha, "tests": self.tests, "rejections": self.rejections,
                "rows": [list(r) for r in self.rows], "p_value": self.p_value, "family_wise": self.family_wise,
                "expected": self.expected, "markov_bound": self.markov_bound, "passed": self.passed,
                "message": self.summary()}


def _same_test(a, b) -> bool:
    """Two runs of one sample that are the same estimator on it (the same statistic and the same means)."""
    ta, tb = a.sampled, b.sampled
    if ta.test != tb.test or ta.mean.shape != tb.mean.shape:
        return False
    scale = max(float(np.abs(ta.mean).max(initial=0.0)), float(np.abs(ta.exact).max(initial=0.0)), 1e-300)
    stat = (ta.statistic == tb.statistic or
            abs(ta.statistic - tb.statistic) <= SAME_RTOL * max(abs(ta.statistic), 1.0))
    return bool(stat and np.abs(ta.mean - tb.mean).max(initial=0.0) <= SAME_RTOL * scale)


def false_alarm_check(rows, alpha: float | None = None) -> FalseAlarmCheck:
    """The false-alarm count of ``rows`` against its binomial law (module docstring).

    Args:
      rows: ``verify.checks.mc.CheckRow`` or ``(example, CheckRow)`` pairs; the rows of one example share its sample.
      alpha: the tests' level (default: the rows' own, which must be one level).

    Returns:
      FalseAlarmCheck. Rows count when their exact moments are known, their exact bias is zero and the estimator
      is per-episode (a batch-dependent estimator's test is not a test at level alpha).
    """
    pairs = [(item if isinstance(item, tuple) else ("", item)) for item in rows]
    null = [(ex, row.mc) for ex, row in pairs
            if row.mc.moments is not None and not row.mc.moments.biased and not row.mc.estimator.batch_dependent]
    if alpha is None:
        levels = {r.alpha for _, r in null} or {r.mc.alpha for _, r in pairs} or {0.0}
        if len(levels) > 1:
            raise ValueError(f"rows tested at several levels {sorted(levels)}: pass alpha")
        alpha = levels.pop()
    distinct: list[tuple[str, object]] = []
    for ex, r in null:
        if not any(ex == e2 and _same_test(r, r2) for e2, r2 in distinct):
            distinct.append((ex, r))
    k = sum(r.mc_rejected for _, r in distinct)
    n = len(distinct)
    rejected = tuple((ex, r.estimator.name) for ex, r in null if r.mc_rejected)
    if k == 0:
        p = 1.0
    else:
        from verify.checks.stats import binom_sf

        p = binom_sf(k - 1, n, alpha)
    return FalseAlarmCheck(float(alpha), n, k, rejected, p)
