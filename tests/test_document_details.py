"""What a reader of the documents sees in the details: minus signs, subscripts, a section every medium has.

The LaTeX document typesets a computed "−2" as maths (an en dash "--2" in text mode before), the HTML report
subscripts a whole name ("g_total", not "g_t otal"), and the Markdown export has the continuous-densities section
the LaTeX document has. Expected strings are written out here, not taken from the code's output.
"""
import re

from derive.latex import render_document, render_markdown
from derive.printing import Prose, Tex, latex_escape
from verify.app.errata import all_errata


def test_latex_prose_sets_computed_numbers_as_maths():
    assert latex_escape("rewards −2 and 2") == "rewards $-2$ and 2"
    assert latex_escape("θ = (2, −2), H = 2") == r"$\theta = (2, -2)$, $H = 2$"
    assert latex_escape("(S, A, H) = (2, 2, 2)") == "$(S, A, H) = (2, 2, 2)$"
    assert latex_escape("0.04 < 0.14") == "$0.04 < 0.14$"          # a comparison of numbers is maths
    assert latex_escape("only at γ = 1.") == r"only at $\gamma = 1$."  # a full stop ends the sentence, not the number
    assert latex_escape("gives 2 ≠ 1 (states)") == r"gives $2 \neq 1$ (states)"
    assert latex_escape("bias 1.5e−17") == r"bias $1.5 \cdot 10^{-17}$"
    assert latex_escape("pages 3–4, v2, 3.5, a_b") == r"pages 3--4, v2, 3.5, a\_b"      # an en dash stays one
    assert latex_escape("costs \\$5") == r"costs \textbackslash{}\$5"


def test_latex_errata_have_no_en_dash_minus_or_text_relations():
    doc = render_document(errata=list(all_errata()))
    errata = doc[doc.index(r"\section{Errata"):doc.index(r"\begin{thebibliography}")
                 if r"\begin{thebibliography}" in doc else len(doc)]
    assert not re.search(r"(?<![\w-])--\d", errata), re.search(r".{40}(?<![\w-])--\d.{20}", errata).group()
    assert r"\textless" not in errata and r"\textgreater" not in errata
    assert "rewards $-2$ and 2" in errata and r"$\theta = (2, -2)$" in errata      # the variance erratum


def test_html_subscript_takes_the_whole_name():
    html = Prose("see ", Tex(r"g_{\mathrm{total}}", "tr Cov[g_total] and s_H−1 and s_t")).html()
    assert "g<sub>total</sub>" in html and "s<sub>H−1</sub>" in html and "s<sub>t</sub>" in html
    variance = next(e for e in all_errata() if e.id == "reward-to-go-variance")
    assert "g<sub>total</sub>" in variance.evidence.html()


def test_markdown_export_has_the_continuous_section_of_the_latex_document():
    md = render_markdown()
    tex = render_document()
    assert r"\section{Continuous densities}" in tex
    section = md[md.index("## Continuous densities"):]
    assert r"\nabla_{\mu} \mathbb{E}[f(x)] = c_{1} + 2 c_{2} \mu + 3 c_{3} \mu^{2} + 3 c_{3} \sigma^{2}" in section
    # Uniform(0, θ), f(x) = x: E[f] = θ/2, so ∇E[f] = 1/2 (step (1)), while E[f ∇log p] = E[x (−1/θ)] = −1/2
    assert r"| (2) | $\frac{1}{2}$ | $- \frac{1}{2}$ | ✗ |" in section
    assert section.count("| ✓ |") == 6
    assert render_markdown(continuous=False).count("## Continuous densities") == 0
