"""The checks' results in plain words: the sentences of an ``EstimatorCheck`` (``assert_estimator_unbiased``'s
message, ``EstimatorCheck.format()``) and the pieces the terminal report shares (``verify.render``).

Plain text only: no rich, no terminal, no command lines of its own; ``verify.render`` lays these sentences out.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

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
    if all(x.undecided for x in r.tests):
        return f"power: none ({t.reason})"
    seen = np.logical_or.reduce([x.informative.ravel() for x in r.tests if not x.undecided])
    if not seen.any():
        return (f"power: no component varies, so the test compares the mean exactly: any difference above "
                f"{number(t.null_tolerance)} in any component shows")
    b, sd = r.detectable_bias.ravel()[seen], r.detectable_bias_sd.ravel()[seen]
    n_more = r.episodes_to_detect()
    head = ("power: the better of the paired and unpaired tests (per component)"
            if r.moments is None and r.paired is not None else
            "power: the test" if r.moments is None else "Monte Carlo power (shown; the exact bias decides): the test")
    line = (f"{head} detects, with probability {DETECT_POWER:g}, a bias in one component of at least "
            f"{number(float(np.median(b)))} (median over the {seen.sum()} components tested; from "
            f"{number(float(b.min()))} to {number(float(b.max()))})")
    if np.isfinite(sd).any():
        line += f" = {number(float(np.nanmedian(sd)))} per-episode standard deviations of g (median)"
    few = np.logical_and.reduce([x.few.ravel() for x in r.tests if not x.undecided]) & ~seen
    if few.any():
        line += (f"; {few.sum()} components vary with fewer than {MIN_NONZERO} non-zero values or too one-sided "
                 "values for a z-test: no power claimed there (excluded_components in --json)")
    if (~seen & ~few).any():
        line += (f"; {(~seen & ~few).sum()} components have no variance, where only a difference above "
                 f"{number(t.null_tolerance)} would show")
    if n_more is not None:
        line += f"; {n_more} episodes would detect a bias of {number(r.detect_size)} (1% of max |grad J|) in any component"
    if r.moments is None:
        x_all, x_top = r.scaling_error
        if np.isfinite(x_all):
            line += (f"\npower for a scaling bug g -> (1 + x) g: caught with probability {DETECT_POWER:g} for |x| >= "
                     f"{x_all:.3g} ({x_all:.1%}; for the largest |grad J| component alone, |x| >= {number(x_top)})")
    return line


def sampled_verdict(r: McResult, command: str | None) -> str:
    """The headline of a sampling-only run: which test rejected, or why it is consistent or undecided."""
    level = f"each test at alpha / 2 = {r.alpha / 2:g}" if r.paired is not None else f"alpha = {r.alpha:g}"
    test = {"paired": f"the paired test against {r.reference}", "unpaired": "the unpaired test"}[r.chosen]
    if r.verdict == "inconsistent":
        return f"verdict: INCONSISTENT, rejected by {test} ({level}); {not_enumerated(r)}"
    if r.verdict == "consistent":
        return (f"verdict: CONSISTENT: no test rejected ({level}), and the run could see a bias of "
                f"{r.resolution:g} x max |grad J| = {number(r.resolution_size)} in any component; "
                f"{not_enumerated(r)}")
    need = r.episodes_to_resolve()
    more = "" if need is None else (f"; about {need} episodes would decide" + (
        f" ({_with_episodes(command, need)})" if command else ""))
    return f"verdict: UNDECIDED: no test rejected ({level}), but {r.undecided_reason}{more}; {not_enumerated(r)}"


def _with_episodes(command: str, n: int) -> str:
    """``command`` with its --episodes value replaced by n."""
    import re

    return re.sub(r"--episodes \d+", f"--episodes {n}", command) if "--episodes" in command else \
        f"{command} --episodes {n}"


def paired_miss(r: McResult) -> str:
    """The paired test's worst component: the mean of g - g_ref there estimates E[g] - grad J."""
    p, w = r.paired, r.paired.worst
    return (f"  {'the miss' if p.verdict == 'inconsistent' else 'largest difference'}: {r.name_of(w)}: "
            f"mean of g - {r.reference} = {p.mean[w]:.4g} (standard error {p.stderr[w]:.2g}"
            + ("" if p.stderr[w] == 0 else f", z = {p.z[w]:+.2f}") + f"), grad J there {r.test.exact[w]:.6g}")


def _unnamed_bias(c: EstimatorCheck) -> list[str]:
    """Where a bias no catalog pitfall explains sits: the components that carry it, and the horizon it enters at."""
    bias = c.exact_bias
    tol = c.mc.moments.rtol * c.mc.moments.scale
    order = np.argsort(-np.abs(bias).ravel(), kind="stable")
    big = [int(k) for k in order if abs(bias.ravel()[k]) > tol]
    parts = [f"{c.mc.name_of(np.unravel_index(k, bias.shape))} {bias.ravel()[k]:+.3g}" for k in big[:4]]
    lines = [f"no catalog pitfall has this mean; the bias sits in {len(big)} of {bias.size} components: "
             + "; ".join(parts) + (" ..." if len(big) > 4 else "")]
    if c.bias_profile:
        first = next((h for h, b, t in c.bias_profile if b > t), None)
        prof = ", ".join(f"H = {h}: {b:.2g}" for h, b, _ in c.bias_profile)
        where = ("" if first is None else f"; it enters at step t = {first - 1}: episodes cut to {first - 1} "
                 f"step{'s' if first != 2 else ''} are estimated without bias" if first > 1 else
                 "; already the first step t = 0 is wrong (its weight or its score)")
        lines.append(f"exact max|bias| with the episodes cut at horizon H (same MDP): {prof}{where}")
    return lines


def not_enumerated(r: McResult, reason: str = "too many trajectories to enumerate") -> str:
    """Why a result has no exact moments: the trajectories could not be enumerated, or the sample covariance was
    asked for."""
    return "trajectories not enumerated: the sample covariance was asked for" if r.covariance == "sample" else reason


def format_estimator_check(c: EstimatorCheck) -> str:
    """``check_estimator``'s report: the verdict and what decided it, the worst component's numbers, the Monte Carlo
    tests, the power, the seed and how to reproduce it."""
    r, w, t = c.mc, c.worst, c.mc.test
    exact = c.exact_mean is not None
    if exact:
        to = f" to {c.precision.dtype} round-off" if c.precision.limited else ""
        head = (f"BIASED, proved by enumerating {c.n_trajectories} trajectories: its exact mean is not grad J"
                + ("" if not to else f" (beyond{to[3:]})") if c.exact_biased else
                f"unbiased here: its exact mean equals grad J{to} (enumerating {c.n_trajectories} trajectories)")
    else:
        words = {"consistent": "consistent with the exact gradient", "undecided": "UNDECIDED",
                 "inconsistent": "INCONSISTENT with the exact gradient"}
        test = (f"paired test against {r.reference}" if r.chosen == "paired" else "unpaired test")
        if c.verdict == "undecided":
            test = "no test rejected" + ("" if r.reference is None else f"; paired against {r.reference}")
        head = f"{words[c.verdict]} (Monte Carlo, {test}; {not_enumerated(r, 'too large to enumerate')})"
    lines = [f"estimator {c.estimator} on {c.problem}: {head}"]
    if not exact and c.verdict == "undecided":
        lines.append(sampled_verdict(r, c.reproduce).replace("verdict: UNDECIDED: ", "why: ", 1))
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
    if exact and c.exact_biased and not c.precision.limited:
        from verify.checks.precision import Precision

        f32, m = Precision("float32", "", c.precision.steps), r.moments
        if np.abs(m.bias).max() <= f32.rtol * m.scale:
            lines.append(f"precision: this bias ({np.abs(m.bias).max() / m.scale:.2g} of the problem's scale) is "
                         f"within float32 round-off ({f32.rtol:.2g}): the output is float64, but if a step computes "
                         "in float32 (np.float32 arrays, torch's default dtype) it may be round-off, not a bug; "
                         "compute in float64 throughout (or return the float32 array itself) to tell")
    if c.precision.limited:
        m = r.moments
        lines.append(c.precision.describe(None if m is None else m.scale,
                                          None if m is None else float(np.abs(m.bias).max())))
    from verify.checks.fixes import match_lines

    lines += match_lines(c.matches)
    if exact and c.exact_biased and not c.matches:
        lines += _unnamed_bias(c)
    lines.append(f"seed {c.seed}; reproduce: {c.reproduce}")
    return "\n".join(lines)
