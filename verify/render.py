"""The report for people: rich tables with ✓/✗ marks (plain text when not on a terminal or with --no-color).

Every failing check is followed by what failed: the component, both values, the tolerance or p-value, and the
command (with seed) that replays it. One estimator table serves ``report``, ``check`` and (as text) ``mc``, all fed
by ``verify.checks.mc`` result objects; command lines come from the CLI (a ``reproduce`` callback).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from verify.app.report import Report

if TYPE_CHECKING:
    from verify.checks.gradcheck import EstimatorCheck
    from verify.checks.mc import CheckResult, McResult
    from verify.checks.stats import ConsistencyResult

__all__ = ["TEST_NAMES", "estimator_table", "format_estimator_check", "format_mc", "render_check", "render_report"]

MARK = {True: "✓", False: "✗"}
STATUS_MARK = {"passed": "✓", "failed": "✗", "undecided": "?"}
TEST_NAMES = {"chi2": "chi^2 (exact covariance)", "maxz": "max |z| (Bonferroni, sample variances)",
              "hotelling": "Hotelling T^2"}


WIDE = 140   # the full estimator table; narrower consoles get the compact one (details stay in --json)


def _width(console: Console) -> None:
    """The terminal's width, or COLUMNS when set; only a pipe with no stated width gets ``WIDE`` (rich would give
    it 80 columns, and a file or CI log has no reason to be narrow)."""
    import os

    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, WIDE)


def _table(title: str, *columns: str) -> Table:
    # Titles and headers are rich markup: "[f]" or "[g]" would vanish unescaped.
    table = Table(title=escape(title), title_justify="left", title_style="bold")
    for col in columns:
        table.add_column(escape(col))
    return table


def _derivation(console: Console, report: Report) -> None:
    sizes = ", ".join(f"{g.sizes} in {sum(r.grounding[i].seconds for r in report.derivation):.1f} s"
                      for i, g in enumerate(report.derivation[0].grounding)) if report.derivation else ""
    methods = "/".join(sorted({g.method for row in report.derivation for g in row.grounding}))
    table = _table(f"1. Derivation: replay of each rule, grounding as an exact identity ({methods}, sizes {sizes})",
                   "derivation", "eq.", "rule", "replay", "grounding")
    for row in report.derivation:
        table.add_row(row.derivation, str(row.number), row.rule, MARK[row.replay_ok],
                      MARK[all(g.ok for g in row.grounding)])
    console.print(table)
    for row in report.derivation:
        if not row.replay_ok:
            console.print(f"✗ {row.derivation} ({row.number}) {row.rule}: replay failed: {row.replay_message}")
        for g in row.grounding:
            if not g.ok:
                console.print(f"✗ {row.derivation} ({row.number}) {row.rule}: grounding at (S, A, H) = {g.sizes} "
                              f"failed: {g.message}")
    if report.derivation_numeric:
        table = _table("   The same lines evaluated on the built-in examples (exact enumeration) against ∇J by DP",
                       "derivation", "line", "verdict", "evidence")
        for row in report.derivation_numeric:
            table.add_row(row.derivation, str(row.number), "?" if row.undecided else MARK[row.passed], row.message)
        console.print(table)
        skipped = report.derivation_numeric[0].skipped
        if skipped:
            console.print("   not evaluated: " + "; ".join(f"{n} ({why})" for n, why in skipped))
    table = _table("   Continuous case, steps (1)-(7) in closed form", "model", "θ", "∇E[f]", "E[f ∇log p]",
                   "steps that fail", "expected", "verdict")
    for row in report.continuous:
        table.add_row(row.model, row.expectation, _maths(row.values[0]), _maths(row.values[1]),
                      ", ".join(map(str, row.failing_steps)) or "none",
                      ", ".join(map(str, row.expected_failing)) or "none", MARK[row.passed])
    console.print(table)


def _maths(value) -> str:
    """A value in Unicode maths (derive.printing): SymPy's own string (3*c3*mu**2) is parsed and reprinted."""
    from derive.printing import to_unicode

    if not isinstance(value, str):
        return to_unicode(value)
    try:
        from sympy import sympify
        return to_unicode(sympify(value))
    except Exception:  # noqa: BLE001  (text that is not an expression is shown as it is)
        return value


def _errata(console: Console, report: Report) -> None:
    from rich.padding import Padding
    from rich.text import Text

    console.print(f"[bold]2. Errata: {len(report.errata)} slips in the derivation, each with computed evidence[/bold]")
    for e in report.errata:
        holds = getattr(e, "holds", None)
        console.print(f"{'•' if holds is None else MARK[bool(holds)]} [bold]{escape(e.id)}[/bold]: "
                      f"{escape(str(e.title))}", highlight=False)
        # label | text: wrapped lines hang under the text, not at column 0
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=11)
        grid.add_column(ratio=1)
        rows = [("written:", e.seed_text), ("correction:", e.correction), ("evidence:", e.evidence)]
        if holds is not None:
            rows.append(("check:", f"{'✓ the evidence satisfies' if holds else '✗ FAILED: the evidence does not satisfy'}"
                                   f": {e.claim}"))
        for label, text in rows:
            grid.add_row(label, Text(str(text)))
        console.print(Padding(grid, (0, 0, 0, 4)))


def _gradients(console: Console, report: Report) -> None:
    table = _table("3. Exact gradients: enumeration / DP / linear solve vs central finite differences",
                   "example", "J(θ)", "methods", "max |diff|", "tol", "verdict")
    for g in report.gradients:
        table.add_row(g.example, f"{g.J:.10g}", ", ".join(g.methods), f"{g.max_abs_diff:.1e}", f"{g.tol:.0e}",
                      MARK[g.passed])
    console.print(table)
    for g in report.gradients:
        if not g.passed:
            console.print(f"✗ {g.example}: the gradient methods {', '.join(g.methods)} differ by {g.max_abs_diff:.3g} "
                          f"> tol {g.tol:g}; replay: pgverify check --example {g.example}")


def _estimators(console: Console, report: Report, reproduce) -> None:
    if not report.estimators:
        return
    first = report.estimators[0][1].mc
    console.print(estimator_table(report.estimators, f"4. Monte Carlo: estimators vs exact ∇J ({first.episodes} "
                                  f"episodes, seed {first.seed}, α = {first.alpha:g} per test)",
                                  compact=console.width < WIDE))
    console.print(_legend([row for _, row in report.estimators]), markup=False)
    for ex, row in report.estimators:
        if row.status != "passed":
            console.print(f"{STATUS_MARK[row.status]} {ex}, expected {row.expected}, got {row.outcome}:", style="bold")
            console.print(format_mc(row.mc, reproduce(ex, row.mc) if reproduce else None), markup=False)


def _variance(console: Console, report: Report) -> None:
    table = _table("5. Variance: per-episode tr Cov[g] of the unbiased estimators", "example", "estimator",
                   "tr Cov[g]", "vs total_return", "source")
    base = {v.example: v.variance for v in report.variance if v.estimator == "total_return"}
    for v in report.variance:
        ratio = v.variance / base[v.example] if base.get(v.example) else float("nan")
        table.add_row(v.example, v.estimator, f"{v.variance:.4g}", f"{ratio:.3f}", v.source)
    console.print(table)


def render_report(report: Report, *, color: bool = True, console: Console | None = None, reproduce=None) -> None:
    """Print every section and the summary line.

    Args:
      reproduce: ``(example, McResult) -> command line`` for the replay line under each failing estimator row
        (the CLI builds command lines); None prints none.
    """
    console = console or Console(no_color=not color, highlight=False)
    _width(console)
    _derivation(console, report)
    _errata(console, report)
    _gradients(console, report)
    _estimators(console, report, reproduce)
    _variance(console, report)
    summary = report.summary
    status = "PASSED" if report.passed else f"FAILED ({summary['failed']} failing)"
    undecided = f", {summary['undecided']} undecided (not counted as passed)" if summary["undecided"] else ""
    console.print(f"[bold]{status}[/bold]: {summary['passed']}/{summary['checks']} checks passed{undecided}, "
                  f"{len(report.errata)} errata; seed {report.seed}, {report.timing.get('total_s', 0):.1f} s. "
                  f"Replay: {report.command}")


# --- Monte Carlo results: one estimator (text) and estimator tables (rich), for report, check and mc ----------------

def _g(x: float, spec: str = ".3g") -> str:
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


def _power_line(r: McResult) -> str:
    from verify.checks.mc import DETECT_POWER
    from verify.checks.stats import MIN_NONZERO

    t = r.sampled
    if all(x.undecided for x in r.tests):
        return f"power: none ({t.reason})"
    seen = np.logical_or.reduce([x.informative.ravel() for x in r.tests if not x.undecided])
    if not seen.any():
        return (f"power: no component varies, so the test compares the mean exactly: any difference above "
                f"{_g(t.null_tolerance)} in any component shows")
    b, sd = r.detectable_bias.ravel()[seen], r.detectable_bias_sd.ravel()[seen]
    n_more = r.episodes_to_detect()
    head = ("power: the better of the paired and unpaired tests (per component)" if r.moments is None and r.paired is not None else
            "power: the test" if r.moments is None else "Monte Carlo power (shown; the exact bias decides): the test")
    line = (f"{head} detects, with probability {DETECT_POWER:g}, a bias in one component of at least "
            f"{_g(float(np.median(b)))} (median over the {seen.sum()} components tested; from "
            f"{_g(float(b.min()))} to {_g(float(b.max()))})")
    if np.isfinite(sd).any():
        line += f" = {_g(float(np.nanmedian(sd)))} per-episode standard deviations of g (median)"
    few = np.logical_and.reduce([x.few.ravel() for x in r.tests if not x.undecided]) & ~seen
    if few.any():
        line += (f"; {few.sum()} components vary with fewer than {MIN_NONZERO} non-zero values or too one-sided "
                 "values for a z-test: no power claimed there (excluded_components in --json)")
    if (~seen & ~few).any():
        line += (f"; {(~seen & ~few).sum()} components have no variance, where only a difference above "
                 f"{_g(t.null_tolerance)} would show")
    if n_more is not None:
        line += f"; {n_more} episodes would detect a bias of {_g(r.detect_size)} (1% of max |grad J|) in any component"
    if r.moments is None:
        x_all, x_top = r.scaling_error
        if np.isfinite(x_all):
            line += (f"\npower for a scaling bug g -> (1 + x) g: caught with probability {DETECT_POWER:g} for |x| >= "
                     f"{x_all:.3g} ({x_all:.1%}; for the largest |grad J| component alone, |x| >= {_g(x_top)})")
    return line


def _sampled_verdict(r: McResult, command: str | None) -> str:
    """The headline of a sampling-only run: which test rejected, or why it is consistent or undecided."""
    level = f"each test at alpha / 2 = {r.alpha / 2:g}" if r.paired is not None else f"alpha = {r.alpha:g}"
    test = {"paired": f"the paired test against {r.reference}", "unpaired": "the unpaired test"}[r.chosen]
    if r.verdict == "inconsistent":
        return f"verdict: INCONSISTENT, rejected by {test} ({level}); too many trajectories to enumerate"
    if r.verdict == "consistent":
        return (f"verdict: CONSISTENT: no test rejected ({level}), and the run could see a bias of "
                f"{r.resolution:g} x max |grad J| = {_g(r.resolution_size)} in any component; too many trajectories "
                "to enumerate")
    need = r.episodes_to_resolve()
    more = "" if need is None else (f"; about {need} episodes would decide" + (
        f" ({_with_episodes(command, need)})" if command else ""))
    return f"verdict: UNDECIDED: no test rejected ({level}), but {r.undecided_reason}{more}"


def _with_episodes(command: str, n: int) -> str:
    """``command`` with its --episodes value replaced by n."""
    import re

    return re.sub(r"--episodes \d+", f"--episodes {n}", command) if "--episodes" in command else \
        f"{command} --episodes {n}"


def format_mc(r: McResult, command: str | None = None) -> str:
    """One run in words: the verdict and what decided it, the worst component's numbers, both Monte Carlo tests,
    the power, and the replay command."""
    e, t = r.estimator, r.test
    claim = "unbiased" if e.unbiased else "biased pitfall"
    lines = [f"{r.problem}: estimator {e.name} ({claim}), {r.episodes} episodes, seed {r.seed}"]
    verdict = r.verdict
    if r.decided_by == "exact":
        m = r.moments
        lines.append(f"verdict: {verdict.upper()}, decided by the exact bias (enumerating {m.n_trajectories} "
                     "trajectories)")
        w = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(m.bias))), m.bias.shape))
        lines.append(f"exact bias: max |E[g] - grad J| = {np.abs(m.bias).max():.3g} at {_component(r, w)}: exact mean "
                     f"{m.mean[w]:.6g}, grad J {m.grad[w]:.6g}; effect size {_g(r.effect)} per-episode standard "
                     f"deviations (this run's test detects {r.detectable:.3g})")
        from verify.checks.moments import ZERO_BIAS_RTOL

        lines.append(f"power: exact, any bias above {ZERO_BIAS_RTOL * m.scale:.2g} (float round-off of this "
                     "problem) in any component counts")
    else:
        lines.append(_sampled_verdict(r, command))
    w = t.worst
    lines.append(f"Monte Carlo, unpaired (E[g] = grad J): {describe_test(t)}")
    if not t.undecided:
        lines.append(f"  {'differs most' if t.verdict == 'inconsistent' else 'largest deviation'}: "
                     f"{_component(r, w)}: sample mean {t.mean[w]:.6g}, exact {t.exact[w]:.6g}, standard error "
                     f"{t.stderr[w]:.3g}" + ("" if t.stderr[w] == 0 else f" (z = {t.z[w]:+.2f})"))
    if r.paired is not None:
        p = r.paired
        lines.append(f"Monte Carlo, paired with {r.reference} (E[g - g_ref] = 0): {describe_test(p)}")
        if not p.undecided:
            lines.append(_paired_miss(r))
    lines.append(_power_line(r))
    if command:
        lines.append(f"reproduce: {command}")
    return "\n".join(lines)


def _paired_miss(r: McResult) -> str:
    """The paired test's worst component: the mean of g - g_ref there estimates E[g] - grad J."""
    p, w = r.paired, r.paired.worst
    return (f"  {'the miss' if p.verdict == 'inconsistent' else 'largest difference'}: {r.name_of(w)}: "
            f"mean of g - {r.reference} = {p.mean[w]:.4g} (standard error {p.stderr[w]:.2g}"
            + ("" if p.stderr[w] == 0 else f", z = {p.z[w]:+.2f}") + f"), grad J there {r.test.exact[w]:.6g}")


def _component(r: McResult, index) -> str:
    return r.name_of(index)


COMPACT_COLUMNS = ("exact max|bias|", "p-value", "outcome")


def estimator_table(rows, title: str, *, compact: bool = False) -> Table:
    """The estimator table of ``report`` and ``check``: rows are ``CheckRow`` or (example, ``CheckRow``).
    ``compact`` (narrow terminals) keeps the columns that say what happened: ``COMPACT_COLUMNS``."""
    from rich import box

    with_example = bool(rows) and isinstance(rows[0], tuple)
    table = Table(title=escape(title), title_justify="left", title_style="bold",
                  box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD, pad_edge=not compact)
    for col in (["example"] if with_example else []) + ["estimator"]:
        table.add_column(col, no_wrap=True)
    columns = ("claim", "exact max|bias|", "effect", "MC test", "p-value", "detects", "expected", "outcome")
    for col in columns:
        if not compact or col in COMPACT_COLUMNS:
            table.add_column(escape(col), overflow="fold")
    for item in rows:
        ex, row = item if with_example else (None, item)
        r = row.mc
        s = r.sampled
        eff = r.effect
        both = r.detectable_bias
        seen = np.isfinite(both)
        detect = ("-" if not seen.any() else _g(float(np.median(both[seen])), ".2g"))
        claim = "unbiased" if r.estimator.unbiased else "pitfall"
        cells = (claim, "?" if r.moments is None else f"{np.abs(r.moments.bias).max():.1e}",
                 "?" if eff is None else _g(eff, ".3f"), r.chosen if r.paired is not None else s.test,
                 f"{s.p_value:.2g}", detect, row.expected, f"{STATUS_MARK[row.status]} {row.outcome}")
        table.add_row(*([ex] if with_example else []), r.estimator.name,
                      *(cell for col, cell in zip(columns, cells) if not compact or col in COMPACT_COLUMNS))
    return table


def _legend(rows) -> str:
    from verify.checks.mc import DETECT_POWER

    n_unbiased = sum(row.mc.estimator.unbiased for row in rows)
    alpha = rows[0].mc.alpha
    return (f"exact max|bias| and effect (bias / per-episode std) by enumeration decide wherever they are known (? = "
            f"not enumerable: the Monte Carlo tests decide, paired against a catalog control and unpaired, each at "
            f"alpha / 2; consistent only with the power to see a bias of {rows[0].mc.resolution:g} x max |grad J| "
            f"in every component). detects: median over components of the smallest bias the tests catch with "
            f"probability {DETECT_POWER}. ? undecided = the run could not tell (never counted as passed). The "
            f"{n_unbiased} unbiased tests have a family-wise false-alarm rate <= {n_unbiased * alpha:.2g}.")


def render_check(check: CheckResult, reproduce=None, *, color: bool = True, console: Console | None = None) -> None:
    """Print ``pgverify check``: the gradient cross-check, the estimator table, details of every row that did not
    pass (with ``reproduce(McResult)`` as its replay line), and the summary counts."""
    console = console or Console(no_color=not color, highlight=False)
    _width(console)
    g = check.gradients
    console.print(f"{check.problem}: J(theta) = {g.J:.10g}; {', '.join(g.methods)} agree within "
                  f"{g.max_abs_diff:.1e} (tol {g.tol:.0e}) {MARK[g.passed]}", markup=False)
    first = check.rows[0].mc
    console.print(estimator_table(check.rows, f"Estimators vs exact grad J ({first.episodes} episodes, seed "
                                              f"{first.seed}, alpha {first.alpha:g})", compact=console.width < WIDE))
    console.print(_legend(check.rows), markup=False)
    for row in check.rows:
        if row.status != "passed":
            console.print(format_mc(row.mc, reproduce(row.mc) if reproduce else None), markup=False)
    s = check.summary
    console.print(f"{s['passed']}/{s['checks']} checks passed, {s['failed']} failed, {s['undecided']} undecided",
                  markup=False)


def format_estimator_check(c: EstimatorCheck) -> str:
    """``check_estimator``'s report: the verdict and what decided it, the worst component's numbers, the Monte Carlo
    tests, the power, the seed and how to reproduce it."""
    from verify.checks.estimators import get_estimator
    from verify.checks.mc import DETECT_POWER

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
        if c.verdict == "undecided":
            test = "no test rejected" + ("" if r.reference is None else f"; paired against {r.reference}")
        head = f"{words[c.verdict]} (Monte Carlo, {test}; too large to enumerate)"
    lines = [f"estimator {c.estimator} on {c.problem}: {head}"]
    if not exact and c.verdict == "undecided":
        lines.append(_sampled_verdict(r, c.reproduce).replace("verdict: UNDECIDED: ", "why: ", 1))
    values = f"exact grad J {c.grad[w]:.6g}"
    if exact:
        values += f", exact mean {c.exact_mean[w]:.6g} (exact bias {c.exact_bias[w]:+.3g})"
    values += f", sample mean {c.mean[w]:.6g}, standard error {c.stderr[w]:.3g}"
    lines.append(f"{'worst component' if not c.passed else 'largest deviation'}: {c.component}: {values}")
    if exact:
        lines.append(f"max |exact bias| = {np.abs(c.exact_bias).max():.3g}, effect size {_g(c.effect)} per-episode "
                     f"standard deviations (this run detects {c.detectable:.3g} with probability {DETECT_POWER})")
    lines.append(f"Monte Carlo, {c.episodes} episodes, unpaired: {describe_test(t)}")
    if r.paired is not None:
        p = r.paired
        lines.append(f"Monte Carlo, paired with {r.reference} on the same episodes: {describe_test(p)}")
        if not p.undecided:
            lines.append(_paired_miss(r))
    if r.mc_rejected and exact and not c.exact_biased:
        lines.append("the exact mean equals grad J, so the Monte Carlo rejection is a false alarm of this sample "
                     "(probability alpha, more when rare actions are missing from it); the verdict is the exact one")
    if not exact:
        lines.append(_power_line(r))
    for name in c.matches:
        lines.append(f"same exact mean as the catalog pitfall {name}: {get_estimator(name).description}")
    lines.append(f"seed {c.seed}; reproduce: {c.reproduce}")
    return "\n".join(lines)
