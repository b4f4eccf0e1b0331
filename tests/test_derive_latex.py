"""The documents: the LaTeX compiles without overfull boxes and reads as mathematics; Markdown; notebook reprs.

The pdflatex test needs texlive-latex-base and poppler-utils (pdftotext). Without them it is skipped locally and
fails under CI=true (.ci/run installs both).
"""

import os
import re
import shutil
import subprocess

import pytest
from sympy import log

from derive import rules as R
from derive.errata import symbolic_errata
from derive.latex import (
    StepStatus, escape_text, failing_steps, render_document, render_markdown, step_latex, verify_derivations,
)
from derive.notation import Density, Grad, Integrate, TestFn, theta, x
from derive.printing import Prose, Tex
from derive.rule_prose import rule_prose
from derive.seed import DERIVATIONS, SOURCE
from derive.steps import Derivation, Step

TOOLS = ("pdflatex", "pdftotext")
NEED_TOOLS = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS) and not os.environ.get("CI"),
                                reason="pdflatex/pdftotext not on PATH (CI installs texlive-latex-base, poppler-utils)")
SYMPY_NAMES = re.compile(r"dpi_|rho0_|R_tau|pi_\d|P_\d|r_\d{3}|\*\*")


def _all_ok_status(sizes=((2, 2, 2), (3, 2, 3))):
    """A status saying every step passed (the typesetting tests do not re-run the 20 s verification)."""
    return {(d.name, s.number): StepStatus(True, "structurally equal",
                                           tuple((sz, "symbolic", True, "") for sz in sizes))
            for d in DERIVATIONS for s in d.steps}


def test_document_has_every_step_label_and_erratum():
    doc = render_document(errata=symbolic_errata(), status=_all_ok_status())
    for d in DERIVATIONS:
        for s in d.steps:
            assert f"\\tag{{{s.number}}}\\label{{eq:{s.number}}}" in doc
    for e in symbolic_errata():
        assert escape_text(e.id) in doc
    assert "\\usepackage{amsmath}" in doc and doc.rstrip().endswith("\\end{document}")
    assert set(re.findall(r"\\usepackage\{(\w+)\}", doc)) == {"amsmath", "amssymb"}
    # the seed's notation: grad J on the left of (8), (14), (15); the seed's factor order R(tau) grad log pi
    assert "\\nabla_{\\theta} J(\\pi_{\\theta}) = " in doc
    assert re.search(r"R\(\\tau\) \\nabla_\{\\theta\} \\log \\pi", doc)
    # cross-references: reward-to-go starts from (15), and the bibliography is cited
    assert "\\eqref{eq:15}" in doc and "\\cite{williams1992" in doc and "\\bibitem{sutton2000}" in doc


def test_title_block_says_what_was_verified_and_failures_are_marked():
    doc = render_document(status=_all_ok_status())
    assert "Every step was replayed" in doc and "$(3, 2, 3)$ 15/15 $\\checkmark$" in doc
    status = _all_ok_status()
    status["source", 2] = StepStatus(False, "rule does not apply: no grad(Int(...))", ())
    doc = render_document(status=status)
    assert "Some steps FAILED" in doc and "\\textbf{FAILED}: replay failed: rule does not apply" in doc
    assert "Not verified in this export" in render_document(status=None)


def test_a_wrong_step_is_a_failed_row_not_an_exception():
    f, p = TestFn(x), Density(x, theta)
    wrong = Step(3, Grad(p * f), R.PRODUCT_RULE, f * Grad(p))   # drops p grad f
    d = Derivation("broken", "A broken copy", (wrong,))
    status = verify_derivations([d], sizes=((1, 2, 1),))
    assert not status["broken", 3].ok
    lines = failing_steps(status)
    assert len(lines) == 1 and lines[0].startswith("broken (3): replay failed")
    assert "FAILED" in step_latex(wrong, status=status["broken", 3])


def test_rule_prose_has_no_ascii_maths():
    # every rule a derivation cites has a justification and side conditions whose words carry no maths:
    # sub/superscripts, braces and SymPy spellings live only in expressions or hand-written LaTeX (Tex)
    ascii_maths = re.compile(r"[_^{}]|\bgrad\b|\btheta\b|\bpi\(|\bsum_|\bE\[|->|<=|>=")
    for d in DERIVATIONS:
        for s in d.steps:
            justification, conditions = rule_prose(s.rule)
            for prose in (justification, *conditions):
                assert isinstance(prose, Prose)
                words = "".join(p for p in prose.parts if isinstance(p, str) and not isinstance(p, Tex))
                assert not ascii_maths.search(words), (s.rule.name, words)


def test_escape_text_handles_specials_and_unicode():
    assert escape_text("a_b & c%") == r"a\_b \& c\%"
    assert "?" == escape_text("\u4e2d")


def test_markdown_export():
    md = render_markdown(errata=symbolic_errata(), status=_all_ok_status())
    assert md.startswith("# The policy gradient, step by step")
    assert md.count("$$") % 2 == 0
    blocks = re.findall(r"^\$\$\n(.*?)\n\$\$$", md, flags=re.S | re.M)
    for d in DERIVATIONS:
        for s in d.steps:
            assert any(b.rstrip().endswith(f"\\qquad ({s.number})") for b in blocks), s.number
    assert "## Errata of the source" in md and "✓ the evidence satisfies" in md
    assert "\\cite" not in md and "\\tag" not in md     # neither renders on a code-hosting site


def test_notebook_reprs():
    latex = SOURCE._repr_latex_()
    assert latex.startswith("$$") and latex.count("$$") == 2 * len(SOURCE.steps)
    assert "(15)$$" in latex
    assert SOURCE.step(9)._repr_latex_().startswith("$$p(\\tau \\mid \\theta) = \\rho_{0}(s_{0}) \\prod")
    assert SOURCE._repr_markdown_().startswith("## The policy gradient")
    assert symbolic_errata()[0]._repr_markdown_().startswith("### Eq. (9) omits")


@NEED_TOOLS
def test_document_compiles_without_overfull_boxes_and_reads_as_maths(tmp_path):
    from verify.app.errata import all_errata

    (tmp_path / "doc.tex").write_text(render_document(errata=all_errata(), status=_all_ok_status()))
    for _ in range(2):   # twice, for the cross-references
        proc = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode", "doc.tex"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-3000:]
    log_text = (tmp_path / "doc.log").read_text(errors="replace")
    overfull = [ln for ln in log_text.splitlines() if "Overfull \\hbox" in ln]
    assert not overfull, overfull[:5]
    assert "undefined" not in log_text.lower() or "Reference" not in log_text
    text = subprocess.run(["pdftotext", "doc.pdf", "-"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60).stdout
    assert "The policy gradient, step by step" in text and "Errata" in text
    for bad in ("_{", "\\_", "^{"):
        assert bad not in text, [ln for ln in text.splitlines() if bad in ln][:3]
    found = [ln for ln in text.splitlines() if SYMPY_NAMES.search(ln)]
    assert not found, found[:3]


def test_log_is_printed_like_the_seed():
    from derive.printing import to_latex
    assert to_latex(Grad(log(Density(x, theta)))) == "\\nabla_{\\theta} \\log p(x \\mid \\theta)"
    assert to_latex(Integrate(TestFn(x) * Density(x, theta), x)) == "\\int dx\\, f(x) p(x \\mid \\theta)"


def test_summaries_state_the_derivations_own_formulas():
    import dataclasses

    from derive.pg_theorem import PG_Q
    from derive.seed import REWARD_TO_GO
    from derive.summaries import summary

    rtg = str(summary(REWARD_TO_GO))
    assert "known given hₜ" in rtg and "given sₜ" not in rtg and "Σₜ′₌ₜᴴ⁻¹ γᵗ′ rₜ′ remains" in rtg
    assert "γᵗ Qₜ(sₜ, aₜ)" in str(summary(PG_Q))
    # the Q form without gamma^t: the summary follows the maths instead of claiming gamma^t Q_t
    last = PG_Q.steps[-1]
    stripped = dataclasses.replace(PG_Q, steps=PG_Q.steps[:-1] + (dataclasses.replace(
        last, after=last.after.xreplace({sym: 1 for sym in last.after.atoms() if str(sym) == "gamma"})),))
    text = str(summary(stripped))
    assert "∇θ J(πθ) = E_τ∼p(·|θ)[Σₜ₌₀ᴴ⁻¹ Qₜ(sₜ, aₜ) ∇θ log πθ(aₜ|sₜ)]" in text, text
