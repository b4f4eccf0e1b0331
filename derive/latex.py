"""LaTeX export: the derivations as a standalone amsmath document.

``PGLatexPrinter`` is SymPy's ``LatexPrinter`` with the notation's conventions;
``render_document`` writes every step numbered as in the seed (``\\tag{n}``),
the rule cited and its side conditions, the added derivations, and errata as
remarks.  The document uses only amsmath and amssymb (texlive-latex-base) and
compiles with ``pdflatex -halt-on-error``.

>>> from derive.notation import Grad, Density, tau, theta
>>> from sympy import log
>>> pg_latex(Grad(log(Density(tau, theta))))
'\\\\nabla_{\\\\theta} \\\\log{\\\\left(p(\\\\tau \\\\mid \\\\theta) \\\\right)}'
>>> escape_text("E_{τ∼p}[R] & 100%")
'E\\\\_\\\\{\\\\ensuremath{\\\\tau}\\\\ensuremath{\\\\sim}p\\\\}[R] \\\\& 100\\\\%'
"""

from __future__ import annotations

from typing import Iterable, Sequence

from sympy import Basic
from sympy.printing.latex import LatexPrinter

from derive.steps import Derivation, Step

__all__ = ["PGLatexPrinter", "pg_latex", "escape_text", "render_derivation", "render_document"]


class PGLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the derivation's notation (nodes print via ``_latex``)."""

    printmethod = "_latex"

    def __init__(self, settings=None):
        super().__init__({"fold_short_frac": False, **(settings or {})})

    def _print_UnevaluatedExpr(self, expr):
        # the multiply-and-divide step shows grad p / p as a displayed fraction
        return self._print(expr.args[0])


def pg_latex(expr: Basic) -> str:
    """LaTeX for a notation expression."""
    return PGLatexPrinter().doprint(expr)


_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&",
            "#": r"\#", "^": r"\^{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}",
            "<": r"\ensuremath{<}", ">": r"\ensuremath{>}", "|": r"\ensuremath{|}"}
_MATH = {"α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "θ": r"\theta", "μ": r"\mu",
         "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau", "Σ": r"\Sigma", "∑": r"\sum",
         "∏": r"\prod", "∫": r"\int", "∇": r"\nabla", "∼": r"\sim", "≥": r"\geq", "≤": r"\leq",
         "≠": r"\neq", "→": r"\to", "·": r"\cdot", "∈": r"\in", "−": "-", "ℛ": r"\mathcal{R}",
         "≝": r"\stackrel{\mathrm{def}}{=}", "′": "'", "×": r"\times"}
_TEXT = {"…": r"\ldots{}", "“": "``", "”": "''", "’": "'", "‘": "`", "—": "---", "–": "--"}


def escape_text(s: str) -> str:
    """Escape plain (Unicode) text for LaTeX: specials escaped, Greek and maths as math.

    Characters outside ASCII with no mapping become ``?`` so pdflatex never fails on them.
    """
    out = []
    for ch in s:
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _MATH:
            out.append(rf"\ensuremath{{{_MATH[ch]}}}")
        elif ch in _TEXT:
            out.append(_TEXT[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def _display(step: Step, previous: Step | None) -> str:
    p = PGLatexPrinter()
    if step.is_equation:
        return f"{p.doprint(step.after.lhs)} = {p.doprint(step.after.rhs)}"
    if previous is not None and not previous.is_equation and previous.after == step.before:
        return f"{{}} = {p.doprint(step.after)}"
    return f"{p.doprint(step.before)} = {p.doprint(step.after)}"


def render_derivation(d: Derivation) -> str:
    """One derivation as a section: per step the rule, its side conditions, and the equation."""
    lines = [rf"\section*{{{escape_text(d.title)}}}"]
    if d.summary:
        lines.append(escape_text(d.summary))
    previous = None
    for step in d.steps:
        rule = step.rule
        conds = "; ".join(escape_text(c) for c in rule.side_conditions)
        lines += [
            "",
            rf"\paragraph{{({escape_text(str(step.number))}) {rule.latex_label}.}}",
            escape_text(rule.justification),
            rf"\emph{{Side conditions:}} {conds}." if conds else "",
            r"\begin{equation}",
            rf"{_display(step, previous)} \tag{{{escape_text(str(step.number))}}}",
            r"\end{equation}",
        ]
        previous = step
    return "\n".join(lines)


def _render_erratum(e) -> str:
    return "\n".join([
        rf"\paragraph{{Remark ({escape_text(e.id)}): {escape_text(e.title)}.}}",
        rf"\emph{{The seed:}} {escape_text(e.seed_text)}\par",
        rf"\emph{{Correction:}} {escape_text(e.correction)}\par",
        rf"\emph{{Evidence (computed):}} {escape_text(e.evidence)}",
        ""])


def render_document(derivations: Sequence[Derivation] | None = None,
                    errata: Iterable = ()) -> str:
    """A standalone LaTeX document of the derivations and errata.

    Args:
      derivations: the derivations to print; default: the seed, reward-to-go and baseline.
      errata: objects with string attributes ``id, title, seed_text, correction,
        evidence`` (``derive.errata.symbolic_errata()`` and the verify side's).

    Returns:
      the document source; it uses only amsmath and amssymb.
    """
    if derivations is None:
        from derive.seed import DERIVATIONS
        derivations = DERIVATIONS
    body = [render_derivation(d) for d in derivations]
    errata = list(errata)
    if errata:
        body.append(r"\section*{Errata: slips in the seed}")
        body += [_render_erratum(e) for e in errata]
    return "\n".join([
        r"\documentclass[10pt]{article}",
        r"\usepackage{amsmath}",
        r"\usepackage{amssymb}",
        r"\setlength{\textwidth}{16cm}\setlength{\oddsidemargin}{0cm}",
        r"\allowdisplaybreaks",
        r"\title{The policy gradient, step by step}",
        r"\author{pgverify (generated; every step replayed by SymPy)}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
        escape_text("Each equation is numbered as in the seed. Above each equation: the rule "
                    "that produces it from the previous line, and the rule's side conditions. "
                    "Corrections built in: p(τ|θ) includes ρ0(s_0), products and sums run over "
                    "t = 0, …, H−1, expectations are over τ ∼ p(·|θ)."),
        *body,
        r"\end{document}",
        ""])
