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
from verify.checks.text import TEST_NAMES, describe_test, format_estimator_check, number as _g
from verify.checks.text import paired_miss as _paired_miss, power_line as _power_line
from verify.checks.text import sampled_verdict as _sampled_verdict

if TYPE_CHECKING:
    from verify.checks.mc import CheckResult, McResult

__all__ = ["TEST_NAMES", "estimator_table", "format_estimator_check", "format_mc", "render_check", "render_report"]

MARK = {True: "✓", False: "✗"}
STATUS_MARK = {"passed": "✓", "failed": "✗", "undecided": "?"}


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
    replayed = sum(bool(getattr(g, "cached", False)) for row in report.derivation for g in row.grounding)
    if replayed:    # verdicts this same code reached in an earlier run (derive.proof_cache; --no-cache proves again)
        sizes += f"; {replayed} of {sum(len(row.grounding) for row in report.derivation)} from the proof cache"
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
    from derive.seed import DERIVATIONS
    from derive.side_conditions import side_condition_counts

    counts = side_condition_counts(DERIVATIONS)
    console.print(f"   Side conditions of the rules cited: {counts['checked']} checked by predicates at every use, "
                  f"{counts['imposed']} imposed on the grounding model (normalisation, Markov property, finite "
                  f"sizes), {counts['assumed']} assumed (listed in the JSON's side_conditions and marked in the "
                  "documents)", highlight=False)
    if report.chain:
        table = _table("   The chain: each derivation's first or last line against the result it links to, "
                       "claimed results, lemmas used by their statements", "check", "link", "verdict")
        for row in report.chain:
            table.add_row(row.kind, row.label, MARK[row.ok])
        console.print(table)
        for row in report.chain:
            if not row.ok:
                console.print(f"✗ {row.label}: {row.message}")
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
    # The model's longest word ("Uniform(0,") gets its whole width: at 80 columns without vertical rules, as the
    # compact estimator table; a word wider than any column folds rather than being cut to "Uniform(…".
    if console.width < WIDE:
        from rich import box

        table.box, table.pad_edge = box.SIMPLE_HEAD, False
    for col in table.columns:
        col.overflow = "fold"
    table.columns[0].min_width = max((len(w) for row in report.continuous for w in row.model.split()), default=0)
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

    from derive.errata import errata_counts, kind_label

    console.print(f"[bold]2. Errata of the source: {errata_counts(report.errata)}[/bold]")
    for e in report.errata:
        holds = getattr(e, "holds", None)
        console.print(f"{'•' if holds is None else MARK[bool(holds)]} [bold]{escape(e.id)}[/bold]: "
                      f"{escape(str(e.title))}", highlight=False)
        # label | text: wrapped lines hang under the text, not at column 0
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=11)
        grid.add_column(ratio=1)
        rows = [("kind:", kind_label(e).lower()), ("source:", e.source_text), ("correction:", e.correction), ("evidence:", e.evidence)]
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
    console.print(_legend(report.estimators, compact=console.width < WIDE), markup=False)
    _notes(console, report.estimators)
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


def _theory(console: Console, report: Report) -> None:
    if not report.theory:
        return
    table = _table("6. Beyond the finite-horizon theorem: stationary theorem, performance difference, surrogates, "
                   "natural gradient, the γ^t-less update (exact)", "claim", "example", "evidence", "reference", "verdict")
    for r in report.theory:
        table.add_row(r.claim, r.example, r.message, r.reference, MARK[r.passed] if not r.undecided else "?")
    console.print(table)


def render_report(report: Report, *, color: bool = True, console: Console | None = None, reproduce=None) -> None:
    """Print every section and the summary line.

    Args:
      reproduce: ``(example, McResult) -> command line`` for the replay line under each failing estimator row
        (the CLI builds command lines); None prints none.
    """
    console = console or Console(no_color=not color, highlight=False, emoji=False)
    _width(console)
    from verify.app.report import SOURCE_CITATION as src
    console.print(f"The derivation checked: {src['author']}, “{src['title']}” ({src['date']}), equations "
                  f"{src['equations']}; the chain of derivations built on it is checked seam by seam.",
                  highlight=False)
    _derivation(console, report)
    _errata(console, report)
    _gradients(console, report)
    _estimators(console, report, reproduce)
    _variance(console, report)
    if getattr(report, "lq", None):
        from verify.app.lq_render import lq_report_table

        console.print(lq_report_table(report.lq))
    _theory(console, report)
    summary = report.summary
    status = "PASSED" if report.passed else f"FAILED ({summary['failed']} failing)"
    undecided = f", {summary['undecided']} undecided (not counted as passed)" if summary["undecided"] else ""
    console.print(f"[bold]{status}[/bold]: {summary['passed']}/{summary['checks']} checks passed{undecided}, "
                  f"{len(report.errata)} errata; random seed {report.seed}, {report.timing.get('total_s', 0):.1f} s. "
                  f"Replay: {report.command}")


# --- Monte Carlo results: one estimator (text) and estimator tables (rich), for report, check and mc ----------------

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
        lines.append(f"power: exact, any bias above {m.rtol * m.scale:.2g} (float round-off of this "
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


def _legend(rows, compact: bool = False) -> str:
    """The table's key (the compact table's explains only the columns it shows), and the false-alarm self-check's
    sentence computed from the count (``verify.checks.selfcheck``); rows: ``CheckRow`` or (example, ``CheckRow``)."""
    from verify.checks.mc import DETECT_POWER
    from verify.checks.selfcheck import false_alarm_check

    check = false_alarm_check(rows)
    first = (rows[0][1] if isinstance(rows[0], tuple) else rows[0]).mc
    exact = ("exact max|bias| by enumeration decides" if compact else
             "exact max|bias| and effect (bias / per-episode std) by enumeration decide")
    detects = ("p-value: of the Monte Carlo test (the wide table and --json add the effect, the test and its "
               "power). " if compact else
               f"detects: median over components of the smallest bias the tests catch with probability "
               f"{DETECT_POWER}. ")
    return (f"{exact} wherever known (? = not enumerable: the Monte Carlo tests decide, paired against a catalog "
            f"control and unpaired, each at alpha / 2; consistent only with the power to see a bias of "
            f"{first.resolution:g} x max |grad J| in every component). {detects}? undecided = the run could not "
            "tell (never counted as passed). " + ("\n" if not check.passed else "")
            + f"{MARK[check.passed] if check.tests else '?'} Self-check: {check.summary()}.")


def _notes(console: Console, rows) -> None:
    """One line per pitfall that is no pitfall on this problem (``verify.checks.equivalence``): why its row expects no
    bias."""
    for item in rows:
        ex, row = item if isinstance(item, tuple) else (None, item)
        if row.note:
            console.print(f"{ex + '/' if ex else ''}{row.mc.estimator.name}: {row.note}", markup=False)


def render_check(check: CheckResult, reproduce=None, *, color: bool = True, console: Console | None = None) -> None:
    """Print ``pgverify check``: the gradient cross-check, the estimator table, details of every row that did not
    pass (with ``reproduce(McResult)`` as its replay line), and the summary counts."""
    console = console or Console(no_color=not color, highlight=False, emoji=False)
    _width(console)
    g = check.gradients
    console.print(f"{check.problem}: J(theta) = {g.J:.10g}; {', '.join(g.methods)} agree within "
                  f"{g.max_abs_diff:.1e} (tol {g.tol:.0e}) {MARK[g.passed]}", markup=False)
    first = check.rows[0].mc
    console.print(estimator_table(check.rows, f"Estimators vs exact grad J ({first.episodes} episodes, seed "
                                              f"{first.seed}, alpha {first.alpha:g})", compact=console.width < WIDE))
    console.print(_legend(check.rows, compact=console.width < WIDE), markup=False)
    _notes(console, check.rows)
    for row in check.rows:
        if row.status != "passed":
            console.print(format_mc(row.mc, reproduce(row.mc) if reproduce else None), markup=False)
    s = check.summary
    console.print(f"{s['passed']}/{s['checks']} checks passed, {s['failed']} failed, {s['undecided']} undecided",
                  markup=False)
