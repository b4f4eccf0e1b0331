"""The report as one self-contained HTML file: MathML for the mathematics, inline SVG for the figures.

``render_html(report)`` reads the same ``Report`` the terminal and the JSON show, and the derivations of
``derive.seed.DERIVATIONS``.  Every step is a MathML display (SymPy's presentation-MathML printer through
``derive.printing``, which browsers render natively), every erratum's text carries its mathematics as MathML,
the tables are HTML tables, and the figures (with the ``plot`` extra, matplotlib) are inline SVG.  Nothing is
fetched: no script, no stylesheet, no font, no CDN -- the file can be mailed, attached to a CI run or opened
offline.
"""
from __future__ import annotations

import html
import io
import math


from derive.latex import StepStatus, _sides, _summary, _title, marked_conditions
from derive.printing import Prose, Tex, mathml_block, seed_names_text, to_mathml, to_unicode
from derive.rule_prose import rule_prose

__all__ = ["render_html", "figures_svg"]

_CSS = """
body{font-family:Georgia,'DejaVu Serif',serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;
line-height:1.45}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{border-bottom:1px solid #ccc;margin-top:2.2rem}
.summary{padding:.6rem 1rem;border-radius:.3rem;margin:1rem 0}.pass{background:#e8f5e9}.fail{background:#ffebee}
.step{margin:.9rem 0 .3rem}.num{font-weight:bold}.ok{color:#1b5e20}.bad{color:#b71c1c;font-weight:bold}
.rule{font-style:italic}.needs{color:#555}.m{font-style:italic}
math[display=block]{margin:.4rem 0 .8rem 2rem;overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}th,td{border:1px solid #ccc;padding:.2rem .5rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.erratum{border-left:3px solid #90a4ae;padding-left:1rem;margin:1.2rem 0}.id{font-family:monospace;color:#555}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.85rem;color:#555}
"""

MARK = {True: '<span class="ok">✓</span>', False: '<span class="bad">✗</span>'}


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _prose(v) -> str:
    return v.html() if isinstance(v, Prose) else _e(v)


def _status(row) -> StepStatus | None:
    if row is None:
        return None
    grounding = tuple((tuple(g.sizes), g.method, bool(g.ok), str(g.message)) for g in row.grounding)
    return StepStatus(bool(row.replay_ok), str(row.replay_message), grounding)


#: the derivation checked, cited (Report JSON "source" has the same fields)
_SOURCE_HTML = ("Alexander Schindorfer, <cite>Policy Gradient Derivation</cite> (21 January 2026)")


def _derivations(report) -> str:
    from derive.seed import DERIVATIONS

    rows = {(r.derivation, str(r.number)): r for r in report.derivation}
    out = ['<section id="derivation"><h2>1. The derivation, step by step</h2>',
           "<p>Each step: the rule cited, its justification and side conditions, and whether the rule replays "
           "(applied to the line before, it gives the line) and the step grounds as an exact identity on "
           f"symbolic tabular MDPs of the sizes shown. Equations are numbered as in {_SOURCE_HTML}.</p>"]
    from derive.side_conditions import side_condition_counts
    counts = side_condition_counts(DERIVATIONS)
    out.append(f"<p>Of the rules' side conditions, {counts['checked']} are checked by a predicate at every use, "
               f"{counts['imposed']} hold on the grounding model by construction (normalisation, the Markov "
               f"property, finite sizes) and {counts['assumed']} are <em>assumed</em>, marked so below.</p>")
    chain = {}
    for row in getattr(report, "chain", ()):
        chain.setdefault(row.derivation, []).append(row)
    for d in DERIVATIONS:
        out.append(f'<h3 id="d-{_e(d.name)}">{_prose(_title(d))}</h3><p>{_prose(_summary(d))}</p>')
        links = chain.get(d.name, [])
        if links:
            out.append('<ul class="chain">' + "".join(
                f'<li>{MARK[r.ok]} {_e(r.label)}: '
                f'<span class="{"needs" if r.ok else "bad"}">{_e(seed_names_text(r.message)[:600])}</span></li>'
                for r in links) + "</ul>")
        previous = None
        for step in d.steps:
            status = _status(rows.get((d.name, str(step.number))))
            justification, conditions = rule_prose(step.rule)
            if status is None:
                mark = '<span class="needs">(not in this report)</span>'
            elif status.ok:
                sizes = ", ".join(str(tuple(g[0])) for g in status.grounding)
                mark = f'{MARK[True]} <span class="needs">replayed; grounded at {_e(sizes)}</span>'
            else:
                mark = f'{MARK[False]} <span class="bad">FAILED: {_e(seed_names_text(status.failure())[:300])}</span>'
            needs = "; ".join(c.html() for c in marked_conditions(step.rule, conditions))
            lhs, rhs = _sides(step, previous)
            out.append(f'<div class="step" id="eq-{_e(step.number)}"><span class="num">({_e(step.number)})</span> '
                       f'{mark} <span class="rule">{_e(step.rule.name.replace("_", " "))}.</span> '
                       f'{justification.html()}' + (f' <span class="needs">Needs: {needs}.</span>' if needs else "")
                       + "</div>")
            out.append(mathml_block(lhs, rhs, step.number))
            previous = step
    out.append("</section>")
    return "\n".join(out)


def _continuous(report) -> str:
    if not report.continuous:
        return ""
    rows = []
    for r in report.continuous:
        values = [to_mathml(v) if not isinstance(v, str) else _e(_unicode_values(v)) for v in r.values]
        rows.append(f"<tr><td>{_e(r.model)}</td><td>{_e(r.expectation)}</td><td>{values[0]}</td><td>{values[1]}"
                    f"</td><td>{_e(', '.join(map(str, r.failing_steps)) or 'none')}</td>"
                    f"<td>{_e(', '.join(map(str, r.expected_failing)) or 'none')}</td><td>{MARK[r.passed]}</td></tr>")
    return ('<section id="continuous"><h3>Continuous densities: steps (1)–(7) in closed form</h3><table><tr>'
            "<th>model</th><th>θ</th>"
            "<th>∇E[f]</th><th>E[f ∇log p]</th><th>steps that fail</th><th>expected</th><th>verdict</th></tr>"
            + "".join(rows) + "</table></section>")


def _unicode_values(text: str) -> str:
    """A value the report keeps as SymPy's string, shown in Unicode maths."""
    try:
        from sympy import sympify
        return to_unicode(sympify(text))
    except Exception:  # noqa: BLE001  (a value that does not parse is shown as it is)
        return text


def _display(item) -> str:
    if isinstance(item, Tex):
        return f'<p class="m" style="margin-left:2rem">{_e(item.text)}</p>'
    from sympy.core.relational import Equality
    if isinstance(item, Equality):
        return mathml_block(item.lhs, item.rhs)
    return to_mathml(item, display=True)


def _errata(report) -> str:
    from derive.errata import errata_counts, kind_label

    out = [f'<section id="errata"><h2>2. Errata of the source: {_e(errata_counts(report.errata))}</h2>',
           f"<p>Each quotes {_SOURCE_HTML} verbatim and is a check: its evidence is computed, and the sentence, its "
           "numbers and its comparison are generated from that evidence. A slip is wrong as written; a notation "
           "issue misnames something the maths gets right; a warning is right as far as it goes but misleads "
           "when applied elsewhere.</p>"]
    for e in report.errata:
        holds = getattr(e, "holds", None)
        check = ("" if holds is None else
                 f"<p>{MARK[bool(holds)]} the evidence {'satisfies' if holds else 'does NOT satisfy'}: "
                 f"{_prose(e.claim)}</p>")
        out.append(f'<div class="erratum" id="erratum-{_e(e.id)}"><h3>{_prose(e.title)}</h3>'
                   f'<p><span class="id">{_e(e.id)}</span> — <strong>{_e(kind_label(e))}.</strong> '
                   f'<em>The source:</em> {_prose(e.source_text)}</p>')
        out += [_display(x) for x in getattr(e, "source_display", ())]
        out.append(f"<p><em>Correction:</em> {_prose(e.correction)}</p>")
        out += [_display(x) for x in getattr(e, "correction_display", ())]
        out.append(f"<p><em>Evidence (computed):</em> {_prose(e.evidence)}</p>")
        out += [_display(x) for x in getattr(e, "evidence_display", ())]
        out.append(check + "</div>")
    out.append("</section>")
    return "\n".join(out)


def _cell(v) -> str:
    if isinstance(v, bool):
        return f"<td>{MARK[v]}</td>"
    if isinstance(v, float):
        text = "nan" if math.isnan(v) else f"{v:.4g}"
        return f'<td class="n">{_e(text)}</td>'
    if isinstance(v, int):
        return f'<td class="n">{v}</td>'
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v) and len(v) <= 6:
        return f'<td class="n">{_e(", ".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in v))}</td>'
    if isinstance(v, (list, tuple, dict)):
        return "<td>…</td>" if v else "<td></td>"
    return f"<td>{_e(v)}</td>"


def _table(title: str, anchor: str, rows: list[dict], columns: list[str] | None = None) -> str:
    """An HTML table of JSON rows: the given columns, else every scalar key of the first row."""
    if not rows:
        return ""
    if columns is None:
        columns = [k for k, v in rows[0].items() if not isinstance(v, (dict, list)) or
                   (isinstance(v, list) and len(v) <= 6 and all(isinstance(x, (int, float)) for x in v))]
    columns = [c for c in columns if any(c in r for r in rows)]
    head = "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c, "")) for c in columns) + "</tr>" for r in rows)
    return f'<section id="{anchor}"><h2>{_e(title)}</h2><table><tr>{head}</tr>{body}</table></section>'


def figures_svg(report) -> list[tuple[str, str]]:
    """(caption, inline <svg>) per figure of the report; [] without matplotlib (the page says so)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
    except ImportError:
        return []
    from verify.app import plots
    from verify.errors import PGVerifyError

    def svg(fig) -> str:
        import matplotlib.pyplot as plt
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
        plt.close(fig)
        text = buf.getvalue()
        return text[text.index("<svg"):]          # drop the XML prolog and DOCTYPE: HTML5 inline SVG

    from verify.model.builtin import EXAMPLE_NAMES, load_example

    out = []
    examples = list(dict.fromkeys(ex for ex, _ in report.estimators))
    for ex in examples:
        runs = [row.mc for e, row in report.estimators if e == ex]
        problem = load_example(ex) if ex in EXAMPLE_NAMES else None
        try:
            out.append((f"Convergence of every estimator on {ex}",
                        svg(plots.convergence_figure(runs, problem=problem))))
        except (PGVerifyError, ValueError, TypeError):
            continue        # no traces in this report (built without them)
    if report.variance:
        out.append(("Per-episode variance tr Cov[g] relative to total_return",
                    svg(plots.variance_figure(report.variance))))
    return out


def _self_check(data: dict | None) -> str:
    """The false-alarm self-check's sentence (``verify.checks.selfcheck``), marked like every check."""
    if not data:
        return ""
    mark = MARK[bool(data.get("passed"))] if data.get("tests") else "?"
    return f'<p id="self-check">{mark} Self-check: {_e(data.get("message", ""))}</p>'


def _not_passed(summary: dict) -> str:
    """The banner's counts beyond the passed ones, as the terminal's last line says them."""
    failed, undecided = summary.get("failed", 0), summary.get("undecided", 0)
    return (f", {failed} failed" if failed else "") + (
        f", {undecided} undecided (not counted as passed)" if undecided else "")


def render_html(report, *, figures: bool = True) -> str:
    """The whole report as one self-contained HTML5 document (MathML maths, inline SVG figures, no network)."""
    data = report.to_json()
    summary = data.get("summary", {})
    passed = bool(data.get("passed"))
    status = "PASSED" if passed else "FAILED"
    figs = figures_svg(report) if figures else []
    if figs:
        fig_html = "".join(f"<figure>{s}<figcaption>{_e(c)}</figcaption></figure>" for c, s in figs)
    else:
        fig_html = ("<p>No figures: matplotlib (the <code>plot</code> extra: <code>pip install "
                    "'pgverify[plot]'</code>) is not installed.</p>" if figures else "<p>Figures not requested.</p>")
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>pgverify report</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        "<h1>pgverify report: the policy gradient, checked</h1>",
        f"<p>The derivation checked: {_SOURCE_HTML}, equations (1)–(15) and its reward-to-go remark, with the "
        "reward-to-go, baseline and policy-gradient-theorem derivations it omits. References: R. J. Williams "
        "(1992); R. S. Sutton et al. (2000); J. Schulman et al. (2016); J. Achiam, <cite>Spinning Up in Deep "
        "Reinforcement Learning</cite> (OpenAI, 2018).</p>",
        f'<div class="summary {"pass" if passed else "fail"}"><strong>{status}</strong>: '
        f'{_e(summary.get("passed", "?"))}/{_e(summary.get("checks", "?"))} checks passed'
        f'{_e(_not_passed(summary))}, {_e(summary.get("errata", len(report.errata)))} errata; '
        f'random seed {_e(data.get("seed"))}. '
        f'Replay: <code>{_e(data.get("command", ""))}</code></div>',
        _derivations(report), _continuous(report), _errata(report),
        _table("3. Exact gradients", "gradients", data.get("gradients", [])),
        _table("4. Monte Carlo estimators against the exact gradient", "estimators", data.get("estimators", []),
               ["example", "estimator", "unbiased", "episodes", "test", "p_value", "effect_size", "decided_by",
                "expected", "outcome", "passed"]),
        _self_check(data.get("self_check")),
        _table("5. Variance", "variance", data.get("variance", [])),
        _table("7. Beyond the finite-horizon theorem: stationary theorem, performance difference, surrogates, "
               "natural gradient, the γ^t-less update", "theory", data.get("theory", []),
               ["claim", "example", "passed", "message", "reference"]),
        '<section id="figures"><h2>6. Figures</h2>', fig_html, "</section>",
        f"<p><small>pgverify {_e(data.get('version', ''))}; timing "
        f"{_e(round(float(data.get('timing', {}).get('total_s', 0.0)), 1))} s.</small></p>",
        "</body>", "</html>", ""]
    return "\n".join(p for p in parts if p)



