r"""How a derivation shows outside a whole document: its title, each step's displayed equation, a step in Markdown,
and the Jupyter reprs of ``Step`` and ``Derivation``.

The derivation's own modules reach only this module for their notebook reprs, and ``derive.latex`` (the document
builder) builds on the same pieces, so the builder stays above every module it documents: no import circle.
A notebook shows a derivation with its own title and summary; the documents add citations and the chain.

>>> from derive.seed import SEED
>>> SEED.step(9)._repr_latex_().startswith(r"$$p(\tau \mid \theta) = \rho_{0}(s_{0}) \prod")
True
>>> SEED._repr_markdown_().startswith("## The policy gradient")
True
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sympy import Basic

from derive.printing import Prose, Tex, name_objective, seed_names_text, to_latex
from derive.rule_prose import rule_prose

if TYPE_CHECKING:
    from derive.steps import Derivation, Step

__all__ = ["TITLES", "derivation_repr_latex", "derivation_repr_markdown", "equation_sides", "markdown_math",
           "markdown_status", "marked_conditions", "step_markdown", "step_repr_latex", "title_of"]


TITLES = {
    "pg_advantage": Prose("The policy-gradient theorem, advantage form (baseline ", Tex("b = V", "b = V"), ")"),
}


def title_of(d: Derivation) -> Prose:
    return TITLES.get(d.name) or (d.title if isinstance(d.title, Prose) else Prose(d.title))


def equation_sides(step: Step, previous: Step | None) -> tuple[Basic | None, Basic]:
    """(lhs or None for a continued chain, rhs) of the displayed equation, with J(π_θ) named."""
    if step.is_equation:
        return name_objective(step.after.lhs), step.after.rhs
    if previous is not None and not previous.is_equation and previous.after == step.before:
        return None, step.after
    return name_objective(step.before), step.after


def markdown_status(status) -> str:
    if status is None:
        return ""
    if status.ok:
        sizes = ", ".join(str(tuple(g[0])) for g in status.grounding)
        return " — ✓ replayed" + (f", grounded at {sizes}" if sizes else "")
    return f" — ✗ **FAILED**: {seed_names_text(status.failure())}"


def markdown_math(prose: Prose) -> str:
    """Prose for Markdown: text as is, maths as ``$...$``."""
    out = []
    for part in prose.parts:
        if isinstance(part, Tex):
            out.append(part.text if part.latex.startswith("\\cite") else f"${part.latex}$")
        elif isinstance(part, str):
            out.append(part.replace("*", r"\*").replace("_", r"\_"))
        else:
            out.append(f"${to_latex(part)}$")
    return "".join(out)


def marked_conditions(rule, conditions) -> list:
    """The rule's side conditions (Prose), each one pgverify neither checks nor imposes marked "(assumed)"."""
    from derive.side_conditions import classify
    statuses = [status for _, status in classify(rule)]
    if len(statuses) != len(conditions):
        return list(conditions)
    return [Prose(c, " (assumed)") if status == "assumed" else c for c, status in zip(conditions, statuses)]


def step_markdown(step: Step, previous: Step | None = None, status=None) -> str:
    """One step as Markdown: the rule and justification (side conditions pgverify neither checks nor imposes
    marked "(assumed)"), then a ``$$`` display numbered as in the source."""
    justification, conditions = rule_prose(step.rule)
    lhs, rhs = equation_sides(step, previous)
    eq = (f"{to_latex(lhs)} = " if lhs is not None else "= ") + to_latex(rhs)
    conds = "; ".join(markdown_math(c) for c in marked_conditions(step.rule, conditions))
    return "\n".join([
        f"**({step.number})** *{step.rule.name.replace('_', ' ')}.* {markdown_math(justification)}"
        + (f" *Needs:* {conds}." if conds else "") + markdown_status(status),
        "",
        "$$",
        rf"{eq} \qquad ({step.number})",
        "$$",
        ""])


def derivation_repr_markdown(d: Derivation) -> str:
    """For Jupyter: the title, the derivation's own summary, and every step as ``step_markdown`` shows it."""
    summary = d.summary if isinstance(d.summary, Prose) else Prose(d.summary or "")
    out, previous = [f"## {markdown_math(title_of(d))}", "", markdown_math(summary), ""], None
    for step in d.steps:
        out.append(step_markdown(step, previous))
        previous = step
    return "\n".join(out)


def derivation_repr_latex(d: Derivation) -> str:
    """For Jupyter: one ``$$`` display per step, numbered as in the seed (the first is the seed's first equation)."""
    out, previous = [], None
    for step in d.steps:
        lhs, rhs = equation_sides(step, previous)
        left = f"{to_latex(lhs)} = " if lhs is not None else "= "
        out.append(rf"$${left}{to_latex(rhs)} \qquad ({step.number})$$")
        previous = step
    return "\n".join(out)


def step_repr_latex(step: Step) -> str:
    lhs, rhs = equation_sides(step, None)
    return f"$${to_latex(lhs)} = {to_latex(rhs)} \\qquad ({step.number})$$"
