r"""Documents of the derivations: a standalone LaTeX document, Markdown with ``$$`` maths, notebook reprs.

``render_document`` writes: a title block saying what was verified (each derivation's replay and grounding
sizes, with ✓ or ✗), the notation, every derivation with its steps numbered as in the source (``\tag`` and
``\label``, cited with ``\eqref``), each step's rule, justification, side conditions and status, the
continuous cases (Gaussian, Uniform(0, θ)), the errata as a section with real equations, and a short
bibliography.  Long equations are broken with ``split`` so pdflatex reports no overfull box.  Only amsmath
and amssymb (texlive-latex-base).  Every expression is printed by ``derive.printing``.

``verify_derivations`` replays and grounds every step first; a failing step is a row (a status with the
message), never an exception, and the document marks it.

>>> from derive.seed import SOURCE
>>> SOURCE._repr_latex_().startswith(r"$$\nabla_{\theta} \mathbb{E}_{x \sim p(\cdot \mid \theta)}\left[f(x)\right]")
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from sympy import Add, Basic, Product, Sum
from sympy.core.relational import Equality

from derive.notation import Expectation
from derive.display import equation_sides as _sides, markdown_math as _md_math
from derive.display import marked_conditions, step_markdown
from derive.errata import erratum_markdown
from derive.printing import PGLatexPrinter, Prose, Tex, latex_escape, name_objective, seed_names_text, to_latex
from derive.errata import errata_counts, kind_label
from derive.rule_prose import rule_prose
from derive.steps import Derivation, Step

__all__ = ["PGLatexPrinter", "pg_latex", "escape_text", "StepStatus", "verify_derivations", "failing_steps",
           "render_document", "render_markdown", "derivation_latex", "derivation_markdown",
           "step_latex", "step_markdown", "erratum_markdown", "BIBLIOGRAPHY", "LINE_BUDGET"]

pg_latex = to_latex
escape_text = latex_escape

#: the width a display line may take, in estimated glyphs (16 cm of 10 pt maths, less the tag)
LINE_BUDGET = 62

BIBLIOGRAPHY = (
    ("schindorfer2026", "A. Schindorfer. Policy Gradient Derivation. 21 January 2026. (The derivation checked: "
                        "equations (1)--(15) and the reward-to-go remark.)"),
    ("williams1992", "R. J. Williams. Simple statistical gradient-following algorithms for connectionist "
                     "reinforcement learning. Machine Learning, 8:229--256, 1992."),
    ("sutton2000", "R. S. Sutton, D. McAllester, S. Singh and Y. Mansour. Policy gradient methods for "
                   "reinforcement learning with function approximation. In NeurIPS 12, 2000."),
    ("schulman2016", "J. Schulman, P. Moritz, S. Levine, M. Jordan and P. Abbeel. High-dimensional continuous "
                     "control using generalized advantage estimation. In ICLR, 2016."),
    ("spinningup2018", "J. Achiam. Spinning Up in Deep Reinforcement Learning. OpenAI, 2018. "
                       "https://spinningup.openai.com (Part 3, Intro to Policy Optimization: the expected "
                       "grad-log-prob lemma)."),
)

_TITLES = {
    "pg_advantage": Prose("The policy-gradient theorem, advantage form (baseline ", Tex("b = V", "b = V"), ")"),
}


def _title(d: Derivation) -> Prose:
    return _TITLES.get(d.name) or (d.title if isinstance(d.title, Prose) else Prose(d.title))


def _summary(d: Derivation) -> Prose:
    """The summary, its formulas taken from the derivation's own lines (``derive.summaries``)."""
    from derive.summaries import summary
    return summary(d)


summary_of = _summary    # the documents' summary of a derivation (with citations), public for verify.html


# --- verification ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepStatus:
    """What replay and grounding found for one step.

    Attributes:
      replay_ok: the cited rule turns ``before`` into ``after``.
      replay_message: how it was decided, or why it failed.
      grounding: ((S, A, H), method, ok, message) per size.
    """

    replay_ok: bool
    replay_message: str
    grounding: tuple = ()

    @property
    def ok(self) -> bool:
        return self.replay_ok and all(g[2] for g in self.grounding)

    def failure(self) -> str:
        if not self.replay_ok:
            return f"replay failed: {self.replay_message}"
        for sizes, method, ok, message in self.grounding:
            if not ok:
                return f"grounding at (S, A, H) = {tuple(sizes)} ({method}) failed: {message}"
        return ""


def verify_derivations(derivations: Sequence[Derivation], sizes=((2, 2, 2),), method: str = "auto") -> dict:
    """Replay and ground every step; never raises (an error is a failed status naming the step).

    ``method`` is ``derive.grounding.ground_step``'s: "auto" (the report's) proves small sizes symbolically and
    larger ones at random points modulo a prime; each status records the method that decided.

    Returns:
      {(derivation name, step number): StepStatus}.
    """
    from derive.grounding import ground_step
    from derive.steps import check_step

    out = {}
    for d in derivations:
        for step in d.steps:
            try:
                c = check_step(step)
                replay_ok, message = bool(c.ok), str(c.message)
            except Exception as err:  # noqa: BLE001  (a failing step is a row, never a traceback)
                replay_ok, message = False, f"{type(err).__name__}: {err}"
            grounding = []
            for sz in sizes:
                try:
                    g = ground_step(step, sz, method)
                    grounding.append((tuple(sz), str(getattr(g, "method", method)), bool(g.ok),
                                      str(getattr(g, "message", ""))))
                except Exception as err:  # noqa: BLE001
                    grounding.append((tuple(sz), method, False, f"{type(err).__name__}: {err}"))
            out[d.name, step.number] = StepStatus(replay_ok, message, tuple(grounding))
    return out


def failing_steps(status: dict) -> list[str]:
    """One line per failing step: "derivation (number): reason"."""
    return [f"{name} ({number}): {s.failure()}" for (name, number), s in status.items() if not s.ok]


# --- equations, broken to fit ---------------------------------------------------------------------------------------

def _width(tex: str) -> float:
    """A rough width of a LaTeX maths string in glyphs (sub- and superscripts count 0.6)."""
    s = re.sub(r"\\(left|right|middle|Biggl|Biggr|bigl|bigr|qquad|quad|,|;|!)", "", tex)
    s = re.sub(r"\\mathbb\{(\w)\}", r"\1", s)
    s = re.sub(r"\\(sum|prod|int)\b", "SS", s)
    s = re.sub(r"\\[a-zA-Z]+", "c", s)
    small = 0.0

    def scripts(m):
        nonlocal small
        small += 0.6 * len(re.sub(r"[{}\s]", "", m.group(1)))
        return ""

    for _ in range(3):   # nested scripts
        s = re.sub(r"[_^]\{([^{}]*)\}", scripts, s)
    s = re.sub(r"[_^](\w)", lambda m: scripts(m) or "", s)
    s = re.sub(r"[{}\s&]", "", s)
    return len(s) + small + 0.8 * tex.count(" = ") + 0.5 * (tex.count(" + ") + tex.count(" - "))


def _signed(term: Basic, printer) -> tuple[str, str]:
    if term.could_extract_minus_sign():
        return "-", printer._print(-term)
    return "+", printer._print(term)


def _pieces(expr: Basic, printer) -> list[str]:
    """The expression as line pieces; pieces after the first start with an operator (``+``/``-``)."""
    if isinstance(expr, Add):
        out = []
        for i, term in enumerate(printer._as_ordered_terms(expr)):
            op, tex = _signed(term, printer)
            sub = _pieces(-term if op == "-" else term, printer)
            head = ("- " if op == "-" else "") + sub[0] if i == 0 else f"{op} {sub[0]}"
            out += [head, *sub[1:]]
        return out
    if isinstance(expr, Expectation) and _breakable(expr.body):
        d = expr.density
        head = (rf"\mathbb{{E}}_{{{printer._print(d.var)} \sim p(\cdot \mid {printer._print(d.param)})}}"
                r"\Biggl[")
        return _wrap(head, _pieces(expr.body, printer), r"\Biggr]")
    if isinstance(expr, (Sum, Product)) and isinstance(expr.function, Add):
        symbol = r"\sum" if isinstance(expr, Sum) else r"\prod"
        head = printer._limits(symbol, expr.limits) + r" \Biggl("
        return _wrap(head, _pieces(expr.function, printer), r"\Biggr)")
    if isinstance(expr, (Sum, Product)) and _breakable(expr.function):
        symbol = r"\sum" if isinstance(expr, Sum) else r"\prod"
        head = printer._limits(symbol, expr.limits) + " "
        return _wrap(head, _pieces(expr.function, printer), "")
    return [printer._print(expr)]


def _wrap(head: str, inner: list[str], tail: str) -> list[str]:
    out = list(inner)
    out[0] = head + out[0]
    out[-1] = out[-1] + tail
    return out


def _breakable(e: Basic) -> bool:
    return isinstance(e, Add) or (isinstance(e, (Sum, Product)) and _breakable(e.function))


def _pack(pieces: list[str], budget: float, first_budget: float) -> list[str]:
    lines, current = [], ""
    for p in pieces:
        limit = first_budget if not lines else budget
        if current and _width(current + " " + p) > limit:
            lines.append(current)
            current = p
        else:
            current = f"{current} {p}" if current else p
    lines.append(current)
    return lines


def _equation_body(lhs: str | None, rhs: Basic, printer, budget: float = LINE_BUDGET,
                   relation: str = "=") -> str:
    """The body of an equation environment: one line, or a ``split`` when it does not fit."""
    rhs_tex = printer._print(rhs)
    one = f"{lhs} {relation} {rhs_tex}" if lhs else f"{{}} {relation} {rhs_tex}"
    if _width(one) <= budget:
        return one
    pieces = _pieces(rhs, printer)
    lhs_w = _width(lhs) if lhs else 1.0
    if lhs and lhs_w + _width(pieces[0]) + 2 > budget:
        # the left side alone on the first line, the right side below it
        lines = _pack(pieces, budget - 4, budget - 2)
        body = [f"&{lhs} \\\\", f"&\\quad {relation} {lines[0]}"] + [f"&\\qquad {ln}" for ln in lines[1:]]
    else:
        lines = _pack(pieces, budget - 4, budget - lhs_w - 2)
        first = f"{lhs} &{relation} {lines[0]}" if lhs else f"&{relation} {lines[0]}"
        body = [first] + [f"&\\quad {ln}" for ln in lines[1:]]
    return "\\begin{split}\n" + " \\\\\n".join(b.rstrip("\\ ") for b in body) + "\n\\end{split}"


# --- the steps ------------------------------------------------------------------------------------------------------

def _label(number) -> str:
    return f"eq:{number}"


def _cites(text: str, known: set) -> str:
    """Replace "(13)" by \\eqref{eq:13} where 13 is a step of the document."""
    def sub(m):
        n = m.group(1)
        return rf"\eqref{{{_label(n)}}}" if n in known else m.group(0)
    return re.sub(r"\((\w+)\)", sub, text)


def _status_latex(status: StepStatus | None) -> str:
    """✓ (replayed and grounded at every size of the title block), or ✗ with the reason."""
    if status is None:
        return ""
    if status.ok:
        return r"$\checkmark$"
    return rf"$\times$ \textbf{{FAILED}}: {latex_escape(_short(seed_names_text(status.failure())))}"


def _short(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def step_latex(step: Step, previous: Step | None = None, status: StepStatus | None = None,
               known: set = frozenset(), head_ref: str = "") -> str:
    """One step: its rule, justification, side conditions and status, then the numbered equation."""
    p = PGLatexPrinter()
    justification, conditions = rule_prose(step.rule)
    lhs, rhs = _sides(step, previous)
    lhs_tex = p._print(lhs) if lhs is not None else None
    relation = rf"\overset{{{head_ref}}}{{=}}" if head_ref and lhs is not None else "="
    label = _cites(step.rule.latex_label, known)
    conds = "; ".join(c.latex() for c in marked_conditions(step.rule, conditions))
    number = latex_escape(str(step.number))
    return "\n".join([
        "",
        rf"\noindent\textbf{{({number})}} {_status_latex(status)} \emph{{{label}.}} "
        rf"{_cites(justification.latex(), known)}" + (rf" \emph{{Needs:}} {conds}." if conds else ""),
        r"\begin{equation}",
        _equation_body(lhs_tex, rhs, p, relation=relation) + rf" \tag{{{number}}}\label{{{_label(step.number)}}}",
        r"\end{equation}",
    ])


def _known_equations(derivations) -> dict:
    """{number: the displayed equation's (lhs, rhs)} for cross-references between derivations."""
    out = {}
    for d in derivations:
        prev = None
        for s in d.steps:
            out[str(s.number)] = (s.after.lhs, s.after.rhs) if s.is_equation else (None, s.after)
            prev = s
    del prev
    return out


def _ref_text(ref: str, latex: bool) -> str:
    """A chain reference in words: the definition of grad J, a derivation's result, or one of its equations."""
    from derive.steps import GRAD_J
    if ref in (GRAD_J, "∇J"):
        return r"the definition of $\nabla_\theta J(\pi_\theta)$"
    name, _, number = ref.partition(":")
    code = rf"\texttt{{{latex_escape(name)}}}" if latex else f"`{name}`"
    return (f"equation ({latex_escape(number) if latex else number}) of {code}" if number
            else f"the result of {code}")


def _chain_text(d: Derivation, rows, latex: bool) -> str:
    """'Chain: it starts from …, so every line equals ∇J', with the checks' verdicts (documents show the chain)."""
    from derive.steps import GRAD_J
    parts = []
    if d.starts_from:
        parts.append("starts from " + _ref_text(d.starts_from, latex))
    if d.ends_at:
        parts.append("arrives at " + _ref_text(d.ends_at, latex))
    if d.proves == GRAD_J:
        parts.append(r"so every line equals $\nabla_\theta J(\pi_\theta)$" if d.starts_from or d.ends_at
                     else r"ends at an equation for $\nabla_\theta J(\pi_\theta)$")
    elif isinstance(d.proves, Equality):
        parts.append(f"proves ${to_latex(d.proves.lhs)} = {to_latex(d.proves.rhs)}$")
    if not parts:
        return ""
    text = ((r"\noindent\emph{Chain:} " if latex else "*Chain:* ") + "this derivation " + ", ".join(parts) + ".")
    mine = [r for r in (rows or ()) if r.derivation == d.name]
    bad = [r for r in mine if not r.ok]
    if mine and not bad:
        counts = [(sum(r.kind == k for r in mine), k) for k in ("seam", "proves", "lemma")]
        words = {"seam": "seam (exact identity, grounded)", "proves": "claimed result",
                 "lemma": "use of a lemma against its statement"}
        text += (" Checked " + (r"$\checkmark$" if latex else "✓") + ": " + ", ".join(
            f"{n} {words[k]}" + ("s" if n > 1 and k == "lemma" else "") for n, k in counts if n) + ".")
    for r in bad:
        msg = _short(seed_names_text(r.message), 300)
        text += (rf" $\times$ \textbf{{FAILED}}: {latex_escape(msg)}" if latex else f" ✗ **FAILED**: {msg}")
    return text


def derivation_latex(d: Derivation, status: dict | None = None, known: set = frozenset(),
                     earlier: dict | None = None, chain=None) -> str:
    """One derivation as a section (``chain``: ``derive.chain.ChainCheck`` rows, shown with the chain)."""
    earlier = earlier or {}
    head = d.steps[0].before
    head_ref, starts = "", ""
    for number, (lhs, rhs) in earlier.items():
        if rhs == head and lhs is not None:
            head_ref, head_lhs = rf"\eqref{{{_label(number)}}}", lhs
            starts = rf"It starts from the right side of {head_ref}."
            break
        if rhs == head and not starts:
            starts = rf"It starts from the expression \eqref{{{_label(number)}}}."
    lines = [rf"\section{{{_title(d).latex()}}}",
             rf"\label{{sec:{d.name}}}",
             # the summary's formulas are the derivation's own lines: let TeX stretch spaces rather than overflow
             r"\begin{sloppypar}" + _cites(_summary(d).latex(), known) + r"\end{sloppypar}"]
    if starts:
        lines.append(starts)
    link = _chain_text(d, chain, latex=True)
    if link:
        lines.append("\n" + link)
    previous = None
    for i, step in enumerate(d.steps):
        ref = head_ref if i == 0 else ""
        st = None if status is None else status.get((d.name, step.number))
        if i == 0 and head_ref:
            lines.append(_first_step_with_head(step, head_lhs, st, known, ref))
        else:
            lines.append(step_latex(step, previous, st, known, ref))
        previous = step
    last = d.steps[-1].after
    for number, (lhs, rhs) in earlier.items():
        if rhs == last and number != str(d.steps[-1].number):
            lines.append(rf"\noindent The last line is the right side of \eqref{{{_label(number)}}}.")
            break
    return "\n".join(lines)


def _first_step_with_head(step: Step, named_lhs: Basic, status, known, ref) -> str:
    """The first step of a derivation that continues an earlier equation: show that equation's left side."""
    p = PGLatexPrinter()
    justification, conditions = rule_prose(step.rule)
    head = f"{p._print(name_objective(named_lhs))} \\overset{{{ref}}}{{=}} {p._print(step.before)}"
    conds = "; ".join(c.latex() for c in marked_conditions(step.rule, conditions))
    number = latex_escape(str(step.number))
    return "\n".join([
        "",
        rf"\noindent\textbf{{({number})}} {_status_latex(status)} "
        rf"\emph{{{_cites(step.rule.latex_label, known)}.}} "
        rf"{_cites(justification.latex(), known)}" + (rf" \emph{{Needs:}} {conds}." if conds else ""),
        r"\begin{equation}",
        r"\begin{split}",
        f"&{head} \\\\",
        _continued(step.after, p),
        r"\end{split}" + rf" \tag{{{number}}}\label{{{_label(step.number)}}}",
        r"\end{equation}",
    ])


def _continued(rhs: Basic, p) -> str:
    """'&\\quad = rhs' lines of a split, broken to fit."""
    lines = _pack(_pieces(rhs, p), LINE_BUDGET - 6, LINE_BUDGET - 4)
    out = [f"&\\quad = {lines[0]}"] + [f"&\\qquad {ln}" for ln in lines[1:]]
    return " \\\\\n".join(out)


# --- the other sections ---------------------------------------------------------------------------------------------

def _verified_block(derivations, status: dict | None) -> str:
    if status is None:
        return (r"\noindent\textbf{Not verified in this export:} the steps below were not replayed or grounded "
                r"when this file was written (run \texttt{pgverify latex} to verify before export).")
    rows = []
    all_ok = True
    for d in derivations:
        sts = [status.get((d.name, s.number)) for s in d.steps]
        n = len(sts)
        replayed = sum(1 for s in sts if s is not None and s.replay_ok)
        sizes = []
        for s in sts:
            for g in (s.grounding if s else ()):
                if g[0] not in sizes:
                    sizes.append(g[0])
        grounded = []
        for sz in sizes:
            ok = sum(1 for s in sts if s and any(g[0] == sz and g[2] for g in s.grounding))
            mark = r"$\checkmark$" if ok == n else r"$\times$"
            grounded.append(f"$({', '.join(map(str, sz))})$ {ok}/{n} {mark}")
        ok_all = all(s is not None and s.ok for s in sts)
        all_ok &= ok_all
        title = _title(d).latex()
        mark = r"$\checkmark$" if replayed == n else r"$\times$"
        rows.append(f"{title} & {replayed}/{n} {mark} & "
                    f"{', '.join(grounded) or '--'} \\\\")
    verdict = (r"Every step was replayed by SymPy (the cited rule, applied to the line before, gives the line) "
               r"and grounded as an identity on tabular MDPs of the sizes shown; "
               r"each is marked $\checkmark$ below. " + _methods_sentence(status)
               if all_ok else r"\textbf{Some steps FAILED}; they are marked $\times$ below with the reason, the "
                              r"others $\checkmark$ (replayed and grounded at every size shown).")
    from derive.side_conditions import side_condition_counts
    counts = side_condition_counts(derivations)
    verdict += (f" Of the rules' side conditions, {counts['checked']} are checked by a predicate at every use, "
                f"{counts['imposed']} hold on the grounding model by construction (normalisation, the Markov "
                rf"property, finite sizes) and {counts['assumed']} are \emph{{assumed}}, marked so below.")
    return "\n".join([
        r"\noindent\textbf{What was verified.} " + verdict,
        r"\begin{center}\small",
        r"\begin{tabular}{p{7.2cm}lp{5.6cm}}",
        r"derivation & replayed & grounded at $(S, A, H)$ \\ \hline",
        *rows,
        r"\end{tabular}",
        r"\end{center}"])


def _methods_sentence(status: dict) -> str:
    """How the grounding decided: symbolically (for all parameter values) or at random points (with the bound)."""
    methods = {g[1] for s in status.values() for g in s.grounding}
    bounds = [float(m) for s in status.values() for g in s.grounding
              for m in re.findall(r"w\.p\. <= ([0-9.]+e-?\d+)", g[3])]
    parts = []
    if "symbolic" in methods:
        parts.append("symbolically (an identity in every parameter: symbolic $\\rho_0$, $p$, $r$, $\\gamma$, "
                     "$\\pi$)")
    random = sorted(m for m in methods if m != "symbolic")
    if random:
        bound = f", so a wrong step passes with probability at most {max(bounds):.0e}" if bounds else ""
        parts.append(f"at random points with exact modular arithmetic ({', '.join(random)}){bound}")
    return ("Grounding decided " + " or ".join(parts) + ".") if parts else ""


_NOTATION = r"""\section*{Notation}
A trajectory is $\tau = (s_0, a_0, s_1, a_1, \ldots, s_{H-1}, a_{H-1}, s_H)$ with horizon $H$; its probability
under the policy $\pi_\theta$ is $p(\tau \mid \theta)$, its return
$R(\tau) = \sum_{t=0}^{H-1} \gamma^t r_t$ with $r_t = r(s_t, a_t, s_{t+1})$, and the objective is
\[
  J(\pi_\theta) \stackrel{\mathrm{def}}{=} \mathbb{E}_{\tau \sim p(\cdot \mid \theta)}\left[R(\tau)\right].
\]
For discrete variables $\int dx$ is a sum.  Corrections built in (see the errata): $p(\tau \mid \theta)$
includes $\rho_0(s_0)$; products and sums run over $t = 0, \ldots, H-1$; expectations are over
$\tau \sim p(\cdot \mid \theta)$.  In the computed evidence, $\partial\pi(a \mid s)$ is the derivative of
$\pi_\theta(a \mid s)$ in $\theta$, $r(s, a, s')$, $p(s' \mid s, a)$ and $\rho_0(s)$ are the parameters of
a symbolic tabular MDP with numbered states and actions."""


def _continuous_section() -> str:
    """Steps (1)-(7) on N(μ, σ²) (they hold) and on Uniform(0, θ) (step (2) fails), in closed form."""
    from derive.continuous import check_gaussian, uniform_counterexample

    p = PGLatexPrinter()
    out = [r"\section{Continuous densities}", r"\label{sec:continuous}",
           r"Equations (1)--(7) evaluated in closed form.  For $x \sim \mathcal{N}(\mu, \sigma^2)$ and a cubic "
           r"$f(x) = c_0 + c_1 x + c_2 x^2 + c_3 x^3$ with symbolic coefficients, both sides of every step are "
           r"polynomials in $(\mu, \sigma, c_k)$:"]
    for param in ("mu", "sigma"):
        checks = check_gaussian(param)
        fails = [c.number for c in checks if not c.ok]
        name = r"\mu" if param == "mu" else r"\sigma"
        verdict = (r"every step holds" if not fails else
                   r"\textbf{steps " + ", ".join(f"({n})" for n in fails) + r" fail}")
        out += [rf"\paragraph{{$\theta = {name}$:}} {verdict}, and both ends equal",
                r"\begin{equation*}",
                _equation_body(rf"\nabla_{{{name}}} \mathbb{{E}}[f(x)]", checks[0].before, p),
                r"\end{equation*}"]
    u = uniform_counterexample()
    rows = " \\\\\n".join(rf"\eqref{{{_label(c.number)}}} & {p._print(c.before)} & {p._print(c.after)} & "
                          + (r"$\checkmark$" if c.ok else r"$\times$") for c in u.checks)
    rows = re.sub(r"(\\eqref\{[^}]*\}) & ([^&]*) & ([^&]*) &", lambda m: f"{m.group(1)} & ${m.group(2).strip()}$ "
                                                                       f"& ${m.group(3).strip()}$ &", rows)
    failing = ", ".join(rf"\eqref{{{_label(n)}}}" for n in u.failing_steps) or "none"
    out += [r"\paragraph{Uniform$(0, \theta)$, $f(x) = x$:} the support depends on $\theta$, so exchanging "
            r"$\nabla_\theta$ and $\int$ drops the boundary term.  Each step's two sides (steps whose sides "
            rf"differ: {failing}):",
            r"\begin{center}", r"\begin{tabular}{cccc}", r"step & before & after & \\ \hline", rows,
            r"\end{tabular}", r"\end{center}"]
    return "\n".join(out)


def _display_latex(item) -> str:
    if isinstance(item, Tex):
        return item.latex
    p = PGLatexPrinter()
    if isinstance(item, Equality):
        return _equation_body(p._print(item.lhs), item.rhs, p)
    return p._print(item)


def _erratum_latex(e) -> str:
    def prose(v):
        return v.latex() if isinstance(v, Prose) else latex_escape(str(v))

    holds = getattr(e, "holds", None)
    verdict = ("" if holds is None else
               (r"\emph{Check:} $\checkmark$ the computed evidence satisfies: " + prose(e.claim) + "."
                if holds else r"\emph{Check:} $\times$ \textbf{FAILED}: the computed evidence does not satisfy: "
                + prose(e.claim) + "."))
    out = [rf"\subsection*{{{prose(e.title)}}}", rf"\noindent\texttt{{{latex_escape(e.id)}}}\quad"
           rf"\textbf{{{kind_label(e)}.}} \emph{{The source:}} {prose(e.source_text)}"]
    for item in getattr(e, "source_display", ()):
        out += [r"\begin{equation*}", _display_latex(item), r"\end{equation*}"]
    out.append(rf"\emph{{Correction:}} {prose(e.correction)}")
    for item in getattr(e, "correction_display", ()):
        out += [r"\begin{equation*}", _display_latex(item), r"\end{equation*}"]
    out.append(rf"\emph{{Evidence (computed):}} {prose(e.evidence)}")
    for item in getattr(e, "evidence_display", ()):
        out += [r"\begin{equation*}", _display_latex(item), r"\end{equation*}"]
    out.append(verdict)
    return "\n".join(out) + "\n"


def render_document(derivations: Sequence[Derivation] | None = None, errata: Iterable = (),
                    status: dict | None = None, continuous: bool = True, chain=None) -> str:
    """A standalone LaTeX document of the derivations, the continuous cases and the errata.

    Args:
      derivations: the derivations to print; default: ``derive.seed.DERIVATIONS``.
      errata: ``derive.errata.Erratum`` records (or objects with the same text attributes).
      status: ``verify_derivations(...)``'s result; None says in the document that nothing was verified.
      continuous: include the Gaussian and Uniform(0, θ) section.
      chain: ``derive.chain.check_chain`` rows (seams, claimed results, lemma uses), shown per derivation.

    Returns:
      the document source; it uses only amsmath and amssymb.
    """
    if derivations is None:
        from derive.seed import DERIVATIONS
        derivations = DERIVATIONS
    known = {str(s.number) for d in derivations for s in d.steps}
    body, earlier = [], {}
    for d in derivations:
        body.append(derivation_latex(d, status, known, earlier, chain))
        for s in d.steps:
            earlier[str(s.number)] = (s.after.lhs, s.after.rhs) if s.is_equation else (None, s.after)
    if continuous:
        body.append(_continuous_section())
    errata = list(errata)
    if errata:
        body += [r"\section{Errata of the source}", r"\label{sec:errata}",
                 rf"{errata_counts(errata).capitalize()} of \cite{{schindorfer2026}}, each quoting it verbatim. "
                 "A slip is wrong as written; a notation issue misnames something the maths gets right; a "
                 "warning is right as far as it goes but misleads when applied elsewhere. "
                 "Each erratum is a check: its evidence is computed (by SymPy on symbolic MDPs, or exactly by "
                 "enumeration), and its sentence, numbers and comparison are generated from that evidence."]
        body += [_erratum_latex(e) for e in errata]
    bib = "\n".join(rf"\bibitem{{{key}}} {text}" for key, text in BIBLIOGRAPHY)
    return "\n".join([
        r"\documentclass[10pt]{article}",
        r"\usepackage{amsmath}",
        r"\usepackage{amssymb}",
        r"\setlength{\textwidth}{16cm}\setlength{\oddsidemargin}{0cm}\setlength{\evensidemargin}{0cm}",
        r"\setlength{\textheight}{23cm}\setlength{\topmargin}{-1.5cm}",
        r"\allowdisplaybreaks\setlength{\emergencystretch}{2em}",
        r"\title{The policy gradient, step by step}",
        r"\author{Generated by pgverify from the derivation's SymPy expressions}",
        r"\date{The derivation checked: A.~Schindorfer, \emph{Policy Gradient Derivation}, 21 January 2026 "
        r"\cite{schindorfer2026}}",
        r"\begin{document}",
        r"\maketitle",
        _verified_block(derivations, status),
        _NOTATION,
        *body,
        r"\begin{thebibliography}{9}",
        bib,
        r"\end{thebibliography}",
        r"\end{document}",
        ""])


# --- Markdown and notebooks -----------------------------------------------------------------------------------------

def derivation_markdown(d: Derivation, status: dict | None = None, chain=None) -> str:
    out = [f"## {_md_math(_title(d))}", "", _md_math(_summary(d)), ""]
    link = _chain_text(d, chain, latex=False)
    if link:
        out += [link, ""]
    previous = None
    for step in d.steps:
        out.append(step_markdown(step, previous, None if status is None else status.get((d.name, step.number))))
        previous = step
    return "\n".join(out)


def render_markdown(derivations: Sequence[Derivation] | None = None, errata: Iterable = (),
                    status: dict | None = None, chain=None, continuous: bool = True) -> str:
    """The derivations, the continuous cases (as the LaTeX document) and errata as Markdown with ``$$`` displays
    (renders on code-hosting sites)."""
    if derivations is None:
        from derive.seed import DERIVATIONS
        derivations = DERIVATIONS
    out = ["# The policy gradient, step by step", "",
           "The derivation checked: A. Schindorfer, *Policy Gradient Derivation*, 21 January 2026 "
           "[Schindorfer 2026], equations (1)–(15) and its reward-to-go remark.", ""]
    if status is None:
        out += ["*Not verified in this export.*", ""]
    else:
        bad = failing_steps(status)
        from derive.side_conditions import side_condition_counts
        counts = side_condition_counts(derivations)
        out += ["**What was verified:** " + ("every step replayed by SymPy and grounded on tabular MDPs at the "
                                            "sizes shown. " + _methods_sentence(status) if not bad else
                                            f"{len(bad)} steps FAILED: " + "; ".join(bad))
                + f" Of the rules' side conditions, {counts['checked']} are checked by a predicate at every use, "
                  f"{counts['imposed']} hold on the grounding model by construction and {counts['assumed']} are "
                  "*assumed*, marked so below.", ""]
    out += [derivation_markdown(d, status, chain) for d in derivations]
    if continuous:
        from derive.continuous_markdown import continuous_markdown
        out.append(continuous_markdown())
    errata = list(errata)
    if errata:
        out += ["## Errata of the source", "", f"{errata_counts(errata).capitalize()} of Schindorfer's "
                "*Policy Gradient Derivation* (2026), each quoting it verbatim.", ""] + [erratum_markdown(e)
                                                                                       for e in errata]
    out += ["## References", ""] + [f"- {text.replace('--', '–')}" for _, text in BIBLIOGRAPHY] + [""]
    return "\n".join(out)
