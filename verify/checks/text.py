"""The checks' results in plain words: the sentences of an ``EstimatorCheck`` (``assert_estimator_unbiased``'s
message, ``EstimatorCheck.format()``) and the pieces the terminal report shares (``verify.render``).

Plain text only: no rich, no terminal, no command lines of its own; ``verify.render`` lays these sentences out.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from verify.checks.estimators import get_estimator
from verify.checks.mc import DETECT_POWER
from verify.checks.stats import MIN_NONZERO

if TYPE_CHECKING:
    from verify.checks.gradcheck import EstimatorCheck
    from verify.checks.mc import McResult
    from verify.checks.stats import ConsistencyResult

__all__ = ["TEST_NAMES", "describe_test", "format_estimator_check", "number", "paired_miss", "power_line"]

TEST_NAMES = {"chi2": "chi^2 (exact covariance)", "maxz": "max |z| (Bonferroni, sample variances)",
              "hotelling": "Hotelling T^2"}


def number(x: float, spec: str = ".3g") -> str:
    """``x`` in ``spec``, or "inf"."""
    return "inf" if np.isinf(x) else format(x, spec)


def describe_test(t: ConsistencyResult) -> str:
    """"max |z| (...) = 2.7 on 44 components, p = 0.31 > alpha = 0.001: consistent" and the like."""
    if t.undecided:
        return f"{TEST_NAMES[t.test]}: UNDECIDED, {t.reason}"
    stat = ("a zero-variance direction differs (p = 0)" if t.exact_mismatch else
            f"{TEST_NAMES[t.test]} = {t.statistic:.4g} on {t.dof} {'components' if t.test == 'maxz' else 'dof'}, "
            f"p = {t.p_value:.3g}")
    return (f"{stat} {'<=' if t.p_value <= t.alpha else '>'} alpha = {t.alpha:g}: "
            f"{'consistent' if t.consistent else 'INCONSISTENT'}")


def power_line(r: McResult) -> str:
    t = r.sampled
    if t.undecided:
        return f"power: none ({t.reason})"
    seen = t.informative.ravel()
    if not seen.any():
        return (f"power: no component varies, so the test compares the mean exactly: any difference above "
                f"{number(t.null_tolerance)} in any component shows")
    b, sd = r.detectable_bias.ravel()[seen], r.detectable_bias_sd.ravel()[seen]
    n_more = r.episodes_to_detect()
    head = (f"power: the {r.chosen} test" if r.moments is None else
            "Monte Carlo power (shown; the exact bias decides): the test")
    line = (f"{head} detects, with probability {DETECT_POWER:g}, a bias in one component of at least "
            f"{number(float(np.median(b)))} (median over the {seen.sum()} components tested; from "
            f"{number(float(b.min()))} to {number(float(b.max()))})")
    if np.isfinite(sd).any():
        line += f" = {number(float(np.nanmedian(sd)))} per-episode standard deviations of g (median)"
    few = t.few.ravel()
    if few.any():
        line += (f"; {few.sum()} components vary with fewer than {MIN_NONZERO} non-zero values, too few for a "
                 "z-test: no power claimed there (excluded_components in --json)")
    if (~seen & ~few).any():
        line += (f"; {(~seen & ~few).sum()} components have no variance, where only a difference above "
                 f"{number(t.null_tolerance)} would show")
    if n_more is not None:
        line += f"; {n_more} episodes would detect a bias of {number(r.detect_size)} (1% of max |grad J|) in any component"
    return line


def paired_miss(r: McResult) -> str:
    """The paired test's worst component: the mean of g - g_ref there estimates E[g] - grad J."""
    p, w = r.paired, r.paired.worst
    return (f"  {'the miss' if p.verdict == 'inconsistent' else 'largest difference'}: {r.name_of(w)}: "
            f"mean of g - {r.reference} = {p.mean[w]:.4g} (standard error {p.stderr[w]:.2g}"
            + ("" if p.stderr[w] == 0 else f", z = {p.z[w]:+.2f}") + f"), grad J there {r.test.exact[w]:.6g}")


def format_estimator_check(c: EstimatorCheck) -> str:
    """``check_estimator``'s report: the verdict and what decided it, the worst component's numbers, the Monte Carlo
    tests, the power, the seed and how to reproduce it."""
    r, w, t = c.mc, c.worst, c.mc.test
    exact = c.exact_mean is not None
    if exact:
        head = (f"BIASED, proved by enumerating {c.n_trajectories} trajectories: its exact mean is not grad J"
                if c.exact_biased else
                f"unbiased here: its exact mean equals grad J (enumerating {c.n_trajectories} trajectories)")
    else:
        words = {"consistent": "consistent with the exact gradient", "undecided": "UNDECIDED",
                 "inconsistent": "INCONSISTENT with the exact gradient"}
        test = (f"paired test against {r.reference}" if r.chosen == "paired" else "unpaired test")
        head = f"{words[c.verdict]} (Monte Carlo, {test}; too large to enumerate)"
    lines = [f"estimator {c.estimator} on {c.problem}: {head}"]
    values = f"exact grad J {c.grad[w]:.6g}"
    if exact:
        values += f", exact mean {c.exact_mean[w]:.6g} (exact bias {c.exact_bias[w]:+.3g})"
    values += f", sample mean {c.mean[w]:.6g}, standard error {c.stderr[w]:.3g}"
    lines.append(f"{'worst component' if not c.passed else 'largest deviation'}: {c.component}: {values}")
    if exact:
        lines.append(f"max |exact bias| = {np.abs(c.exact_bias).max():.3g}, effect size {number(c.effect)} per-episode "
                     f"standard deviations (this run detects {c.detectable:.3g} with probability {DETECT_POWER})")
    lines.append(f"Monte Carlo, {c.episodes} episodes, unpaired: {describe_test(t)}")
    if r.paired is not None:
        p = r.paired
        lines.append(f"Monte Carlo, paired with {r.reference} on the same episodes: {describe_test(p)}")
        if not p.undecided:
            lines.append(paired_miss(r))
    if r.mc_rejected and exact and not c.exact_biased:
        lines.append("the exact mean equals grad J, so the Monte Carlo rejection is a false alarm of this sample "
                     "(probability alpha, more when rare actions are missing from it); the verdict is the exact one")
    if not exact:
        lines.append(power_line(r))
    for name in c.matches:
        lines.append(f"same exact mean as the catalog pitfall {name}: {get_estimator(name).description}")
    lines.append(f"seed {c.seed}; reproduce: {c.reproduce}")
    return "\n".join(lines)
