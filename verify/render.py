"""The report for people: rich tables with ✓/✗ marks (plain text when not on a terminal or with --no-color).

Every failing check is followed by what failed: the component, both values, the tolerance or p-value, and the
command (with seed) that replays it.
"""
from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from verify.report import Report

__all__ = ["render_report"]

MARK = {True: "✓", False: "✗"}


def _table(title: str, *columns: str) -> Table:
    # Titles and headers are rich markup: "[f]" or "[g]" would vanish unescaped.
    table = Table(title=escape(title), title_justify="left", title_style="bold")
    for col in columns:
        table.add_column(escape(col))
    return table


def _derivation(console: Console, report: Report) -> None:
    sizes = ", ".join(str(g.sizes) for g in report.derivation[0].grounding) if report.derivation else ""
    table = _table(f"1. Derivation: replay of each rule, grounding as an exact identity (symbolic, sizes {sizes})",
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

    console.print(f"[bold]2. Errata: {len(report.errata)} slips in the seed, each with computed evidence[/bold]")
    for e in report.errata:
        holds = getattr(e, "holds", None)
        console.print(f"{'•' if holds is None else MARK[bool(holds)]} [bold]{escape(e.id)}[/bold]: "
                      f"{escape(str(e.title))}", highlight=False)
        # label | text: wrapped lines hang under the text, not at column 0
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=11)
        grid.add_column(ratio=1)
        rows = [("seed:", e.seed_text), ("correction:", e.correction), ("evidence:", e.evidence)]
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
                          f"> tol {g.tol:g}; replay: pgverify check examples/{g.example}.json")


def _estimators(console: Console, report: Report) -> None:
    from verify.mc import DETECT_POWER, format_mc, reproduce_command

    if not report.estimators:
        return
    first = report.estimators[0][1].mc
    table = _table(f"4. Monte Carlo: estimators vs exact ∇J ({first.episodes} episodes, seed {first.seed}, "
                   f"α = {first.alpha:g} per test)",
                   "example", "estimator", "unbiased", "max|bias|", "effect", "p-value", "expected", "outcome")
    for ex, row in report.estimators:
        r = row.mc
        eff = r.effect
        table.add_row(ex, r.estimator.name, "yes" if r.estimator.unbiased else "no",
                      "?" if r.moments is None else f"{np.abs(r.moments.bias).max():.1e}",
                      "?" if eff is None else ("inf" if np.isinf(eff) else f"{eff:.3f}"),
                      f"{r.test.p_value:.2g}", row.expected, f"{MARK[row.passed]} {row.outcome}")
    console.print(table)
    n_unbiased = sum(row.mc.estimator.unbiased for _, row in report.estimators)
    console.print(f"max|bias| and effect (bias / per-episode std) are exact, by enumeration (? = horizon null, not "
                  f"enumerable). A pitfall counts as a pass when it is caught wherever its effect reaches the "
                  f"run's detectable size (power {DETECT_POWER}); the {n_unbiased} unbiased tests have a family-wise "
                  f"false-alarm rate ≤ {n_unbiased * first.alpha:.2g}.")
    for ex, row in report.estimators:
        if not row.passed:
            console.print(f"✗ {ex}, expected {row.expected}, got {row.outcome}:", style="bold")
            console.print(format_mc(row.mc, reproduce_command(f"examples/{ex}.json", row.mc)), markup=False)


def _variance(console: Console, report: Report) -> None:
    table = _table("5. Variance: per-episode tr Cov[g] of the unbiased estimators", "example", "estimator",
                   "tr Cov[g]", "vs total_return", "source")
    base = {v.example: v.variance for v in report.variance if v.estimator == "total_return"}
    for v in report.variance:
        ratio = v.variance / base[v.example] if base.get(v.example) else float("nan")
        table.add_row(v.example, v.estimator, f"{v.variance:.4g}", f"{ratio:.3f}", v.source)
    console.print(table)


def render_report(report: Report, *, color: bool = True, console: Console | None = None) -> None:
    """Print every section and the summary line."""
    console = console or Console(no_color=not color, highlight=False)
    console.width = max(console.width, 120)   # pipes get 80 columns, too few for the tables
    _derivation(console, report)
    _errata(console, report)
    _gradients(console, report)
    _estimators(console, report)
    _variance(console, report)
    checks = report.checks
    failed = [c for c in checks if not c.passed]
    status = "PASSED" if not failed else f"FAILED ({len(failed)} failing)"
    console.print(f"[bold]{status}[/bold]: {len(checks) - len(failed)}/{len(checks)} checks passed, "
                  f"{len(report.errata)} errata; seed {report.seed}, {report.timing.get('total_s', 0):.1f} s. "
                  f"Replay: {report.command}")
